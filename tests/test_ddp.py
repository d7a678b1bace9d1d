"""Two DDP processes on CPU (gloo), launched by Lightning exactly as ``ssl4sar finetune --devices 2`` does.

The training script runs in a subprocess (Lightning's DDP launcher re-executes the script for rank 1). Both ranks
must end with identical weights, see different training samples, and the full-image validation gathered across
the two ranks must give the same numbers as a single-process validation of the final weights.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from ssl4sar.config import load_preset
from ssl4sar.data.datamodules import CaffeDataModule
from ssl4sar.finetune import SegmentationModule
from ssl4sar.training import read_metrics_csv

OVERRIDES = {"finetune.batch_size_per_device": 2, "finetune.global_batch_size": 4, "finetune.max_epochs": 1}

SCRIPT = textwrap.dedent("""
    import hashlib
    import sys
    from pathlib import Path

    from lightning.pytorch.callbacks import Callback

    from ssl4sar.config import load_preset
    from ssl4sar.finetune import finetune

    data, out = sys.argv[1], Path(sys.argv[2])
    overrides = {"finetune.batch_size_per_device": 2, "finetune.global_batch_size": 4, "finetune.max_epochs": 1}


    class Digest(Callback):
        def __init__(self):
            self.batches = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.batches.append(hashlib.sha1(batch["image_context"].numpy().tobytes()).hexdigest())

        def on_train_end(self, trainer, pl_module):
            h = hashlib.sha256()
            for key, value in sorted(pl_module.model.state_dict().items()):
                h.update(key.encode())
                h.update(value.detach().cpu().contiguous().numpy().tobytes())
            rank = trainer.global_rank
            (out / f"rank{rank}.sha256").write_text(h.hexdigest())
            (out / f"rank{rank}.batches").write_text("\\n".join(self.batches))


    finetune(load_preset("smoke", overrides), data, out, devices=2, accelerator="cpu", progress=False,
             callbacks=[Digest()])
""")


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    from ssl4sar.data.synthetic import generate

    data = generate(tmp_path / "data", preset="smoke", seed=1, layouts=("caffe",))["caffe"]
    out = tmp_path / "run"
    out.mkdir()
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0"}
    for name in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, str(script), str(data), str(out)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]

    digests = [(out / f"rank{r}.sha256").read_text() for r in (0, 1)]
    assert digests[0] == digests[1], "the two DDP ranks ended with different weights"
    batches = [set((out / f"rank{r}.batches").read_text().split()) for r in (0, 1)]
    assert len(batches[0]) == len(batches[1]) == 4          # 16 samples / (2 ranks × 2 per batch)
    assert not batches[0] & batches[1], "the ranks trained on the same samples"

    last = out / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 4
    # the validation that DDP gathered across ranks equals a single-process one of the same weights
    df = read_metrics_csv(out / "logs" / "metrics.csv").dropna(subset=["val/mde"])
    logged = df.iloc[-1]
    torch.set_num_threads(1)
    module = SegmentationModule.load_from_checkpoint(last, map_location="cpu")
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    single = trainer.validate(module, datamodule=CaffeDataModule(data, load_preset("smoke", OVERRIDES)),
                              verbose=False)[0]
    for name in ("val/iou_patch", "val/iou_image", "val/mde", "val/mde_picture", "val/missing_fronts", "val/images"):
        assert float(logged[name]) == pytest.approx(single[name], rel=1e-5, nan_ok=True), name
