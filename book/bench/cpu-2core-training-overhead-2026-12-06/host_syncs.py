"""Host-device synchronisations and operator calls of a fine-tuning run, counted on the CPU (2026-12-06).

On a GPU, every call that needs a value on the host (`.item()`, `bool(t)`, `int(t)`, `.tolist()`, `.cpu()`,
`nonzero`, boolean-mask indexing) waits until the device has finished all work queued so far; the host then
cannot queue the next kernels while the device works. They can be counted on the CPU: a TorchFunctionMode sees
every such call (`.to(device)` is not counted, see SYNCING). A TorchDispatchMode counts the ATen operators that
run (on a GPU, about one kernel launch each).

Runs `ssl4sar.finetune.finetune` with the smoke preset on a small synthetic CaFFe set (bf16-mixed, 8 steps, two
validation passes) and reports, per training step and per validation batch, the syncs by the file that asked for
them (ssl4sar or Lightning) and the ATen operators of `ssl4sar` code. Checkpoint saving (once per epoch: every
tensor goes to the CPU) is not counted.

Usage: python host_syncs.py OUT_JSON   (with PYTHONPATH at the checkout to measure)
"""

import collections
import json
import sys
import tempfile
import traceback
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

import ssl4sar
from ssl4sar.data.synthetic import generate_caffe
from ssl4sar.finetune import finetune

# calls that need a value on the host. `.to(device)` is left out: on the CPU it cannot tell Lightning's move of a
# batch to the training device (host to device on a GPU, no sync) from a copy back to the host
SYNCING = {"item", "__bool__", "__int__", "__float__", "__index__", "tolist", "numpy", "nonzero", "cpu",
           "masked_select", "unique"}


def _syncs(func, args, kwargs) -> bool:
    name = getattr(func, "__name__", "")
    if name in SYNCING:
        return True
    return (name == "__getitem__" and len(args) > 1 and isinstance(args[1], torch.Tensor)
            and args[1].dtype == torch.bool)


def _caller() -> str:
    """The innermost ssl4sar or Lightning frame (file:line) below this script's own frames."""
    for frame in reversed(traceback.extract_stack()):
        path = frame.filename
        if path == __file__ or "/torch/" in path:
            continue
        for marker in ("ssl4sar/", "lightning/"):
            if marker in path:
                return marker[:-1] + "/" + path.split(marker, 1)[-1] + f":{frame.lineno}"
        return "other " + Path(path).name + f":{frame.lineno}"
    return "other"


class Counter(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.phase: str | None = None
        self.syncs: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if self.phase and _syncs(func, args, kwargs):
            self.syncs[self.phase][f"{getattr(func, '__name__', func)} {_caller()}"] += 1
        return func(*args, **(kwargs or {}))


class OpCounter(TorchDispatchMode):
    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self.counter = counter
        self.ops: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.counter.phase:
            self.ops[self.counter.phase] += 1
        return func(*args, **(kwargs or {}))


class Phases(Callback):
    """Switches the counters on for each training batch and each validation batch."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.n = collections.Counter()

    def on_train_batch_start(self, *args) -> None:
        self.counter.phase = "train"
        self.n["train"] += 1

    def on_train_batch_end(self, *args) -> None:
        pass  # the guard's check runs in this hook too: stay on until the epoch ends or validation starts

    def on_train_epoch_end(self, *args) -> None:
        self.counter.phase = None

    def on_validation_batch_start(self, trainer, *args) -> None:
        if not trainer.sanity_checking:
            self.counter.phase = "validation"
            self.n["validation"] += 1

    def on_validation_batch_end(self, *args) -> None:
        self.counter.phase = None


if __name__ == "__main__":
    out = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        data = generate_caffe(Path(tmp) / "data", n_train=6, n_test=2, scene_size=(200, 260), seed=0, progress=False)
        counter = Counter()
        ops = OpCounter(counter)
        phases = Phases(counter)
        with counter, ops:
            finetune("smoke", data, Path(tmp) / "run", max_steps=8, resume=False, callbacks=[phases], progress=True,
                     precision="bf16-mixed", accelerator="cpu", trainer_kwargs={"num_sanity_val_steps": 0})
    report = {"ssl4sar": str(Path(ssl4sar.__file__).parent), "batches": dict(phases.n)}
    for phase, n in phases.n.items():
        by_source = counter.syncs[phase]
        report[phase] = {
            "syncs_per_batch": round(sum(by_source.values()) / n, 2),
            "ssl4sar_syncs_per_batch": round(sum(c for k, c in by_source.items() if " ssl4sar/" in k) / n, 2),
            "lightning_syncs_per_batch": round(sum(c for k, c in by_source.items() if " lightning/" in k) / n, 2),
            "aten_ops_per_batch": round(ops.ops[phase] / n, 1),
            "syncs_by_caller": {k: round(c / n, 2) for k, c in by_source.most_common()},
        }
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "ssl4sar"}, indent=1)[:3000])
