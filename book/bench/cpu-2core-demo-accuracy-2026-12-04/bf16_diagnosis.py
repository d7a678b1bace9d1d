"""What the two bf16 diagnosis scripts of this folder share (where_bf16_disagrees.py, which_layers_in_fp32.py).

`setup(argv)` loads the checkpoint and the first N test scenes from `CKPT CAFFE_ROOT N` on one CPU thread and
prepares the fast path as these diagnoses measured it: bf16 everywhere (fp32_embed_and_head off), nearest
upsampling, one forward pass at a time. `run` predicts the scenes on one path, `agreement` compares class maps
with the reference's, `fp32_modules` keeps chosen modules in float32 under autocast."""
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

torch.set_num_threads(1)
from ssl4sar.bench.accuracy import _on_path  # noqa: E402
from ssl4sar.bench.paths import REFERENCE, ExecPath, fast_path  # noqa: E402
from ssl4sar.data.caffe import discover, load_scene  # noqa: E402
from ssl4sar.inference import sliding_window_probabilities  # noqa: E402
from ssl4sar.models.convert import load_model  # noqa: E402


@dataclass
class Diagnosis:
    model: torch.nn.Module
    images: dict
    fast: ExecPath
    context: int
    dev: torch.device = torch.device("cpu")

    def on(self, path: ExecPath) -> torch.nn.Module:
        return _on_path(self.model, path, self.dev)

    def run(self, m: torch.nn.Module, amp, centre_only: bool = True):
        """Class maps, probabilities and seconds of every scene on model ``m`` (autocast dtype ``amp``)."""
        c = self.context
        maps, probs, secs = {}, {}, 0.0
        for k, img in self.images.items():
            t0 = time.perf_counter()
            p = sliding_window_probabilities(m, img, context_size=c, stride=c // 4, sigma=c / 16, batch_size=8,
                                             device=self.dev, amp_dtype=amp, centre_only=centre_only)
            secs += time.perf_counter() - t0
            maps[k] = p.argmax(0).astype(np.uint8)
            probs[k] = p
        return maps, probs, secs

    def reference(self):
        return self.run(self.on(REFERENCE), None, centre_only=False)


def setup(argv=None) -> Diagnosis:
    ckpt, data, n = (argv or sys.argv)[1:4]
    model = load_model(ckpt, map_location="cpu", trusted=True).float().eval()
    model.fp32_embed_and_head = False  # the diagnoses start from bf16 everywhere
    images = {s.stem: load_scene(s)["image"] for s in discover(data, "test")[:int(n)]}
    return Diagnosis(model, images, fast_path("cpu").with_(polyphase=False), int(model.img_size))


def agreement(maps: dict, ref: dict) -> tuple[float, int, int]:
    """Share of pixels with the reference's class, differing pixels, all pixels."""
    d = sum(int((maps[k] != ref[k]).sum()) for k in ref)
    total = sum(v.size for v in ref.values())
    return 1 - d / total, d, total


def fp32_modules(m: torch.nn.Module, modules) -> torch.nn.Module:
    """Run each of ``modules`` in float32 with autocast off (their inputs cast to float32)."""
    for mod in modules:
        def wrapped(*a, f=mod.forward):
            with torch.autocast("cpu", enabled=False):
                return f(*[x.float() if torch.is_tensor(x) else x for x in a])
        mod.forward = wrapped
    return m
