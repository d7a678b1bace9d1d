"""What the two pretraining chapters of the book compute: the recipe next to the paper's, the run, the baseline,
the export.

Chapters 2 (OptSimMIM) and 3 (OptTranslator) differ only in the method; both call these functions. The baseline is
the loss of a predictor that ignores the SAR image and outputs the per-band mean of the optical training crops
(:func:`ssl4sar.pretrain.common.mean_predictor_val_loss`): a network that does not get below it has learned nothing
about the optical image from the SAR.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ssl4sar.book import WorkLayout
from ssl4sar.io import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

#: Values of the paper's pretraining that are not in the preset (spec §5.1).
PAPER_EPOCHS = "≤ 1000, cut by a 24 h wall time (number run: unknown)"
PAPER_INIT = "ImageNet SwinV2-T encoder, random decoder"
#: Optical target bands per pixel (B1 … B12, WVP, SCL; spec §2.2).
N_OPTICAL_BANDS = 14


def recipe_rows(method: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The pretraining settings of ``cfg`` a reader compares with the paper's, for ``method``."""
    pre, model, task = cfg["pretrain"], cfg["model"], cfg["pretrain"][method]
    rows: dict[str, Any] = {"crop (px)": f"{pre['context_size']} × {pre['context_size']}"}
    if method == "optsimmim":
        n_tokens = (int(pre["context_size"]) // int(task["token_size"])) ** 2
        kept = int(n_tokens * (1 - float(task["mask_ratio"])))
        rows |= {"tokens per crop (masked)": f"{n_tokens} ({n_tokens - kept}, {100 * float(task['mask_ratio']):.0f} %)",
                 "values predicted per masked token": int(task["token_size"]) ** 2 * N_OPTICAL_BANDS}
    else:
        rows["targets per crop (pixels × bands)"] = f"{int(pre['context_size']) ** 2} × {N_OPTICAL_BANDS}"
    rows |= {"network: dim / depths": f"{model['embed_dim']} / {model['depths']}",
             "SGD lr": task["lr"],
             "LR schedule": f"× {pre['plateau_factor']} after {pre['plateau_patience']} epochs without improvement",
             "global batch": pre["global_batch_size"],
             "steps per epoch": int(pre["samples_per_epoch"]) // int(pre["global_batch_size"])}
    if "early_stopping_patience" in task:
        rows["early stopping (epochs)"] = task["early_stopping_patience"]
    return rows


def recipe_table(method: str, cfg: Mapping[str, Any], paper_cfg: Mapping[str, Any], epochs: int,
                 init: str) -> pd.DataFrame:
    """The recipe of this run next to the paper's (rows: setting; columns: paper, this run)."""
    table = pd.DataFrame({"paper": recipe_rows(method, paper_cfg),
                          f"this run ({cfg.get('name', 'custom')})": recipe_rows(method, cfg)})
    table.loc["epochs"] = [PAPER_EPOCHS, epochs]
    table.loc["initial weights"] = [PAPER_INIT, init]
    return table


@dataclass
class PretrainingRun:
    """A finished pretraining run of a chapter: the library's result, its wall time, and the per-epoch table."""

    result: Any
    seconds: float
    epochs: pd.DataFrame


def run_pretraining(method: str, cfg: Mapping[str, Any], data_root: str | Path, layout: WorkLayout, *,
                    init: str | None = None, seed: int = 0, max_epochs: int | None = None,
                    imagenet_weights: str | Path | None = None, resume: bool = False,
                    device: str = "auto") -> PretrainingRun:
    """:func:`ssl4sar.pretrain.pretrain` into ``layout.pretrain_run(method)`` (replaced unless ``resume``)."""
    from ssl4sar.metrics_log import epoch_table
    from ssl4sar.pretrain import pretrain
    from ssl4sar.training import single_device_hardware

    run_dir = layout.pretrain_run(method)
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)  # the chapter's own output: start afresh
    t0 = time.perf_counter()
    result = pretrain(method, dict(cfg), data_root, run_dir, init=init, seed=seed, max_epochs=max_epochs,
                      imagenet_weights=imagenet_weights, resume=resume, progress=False,
                      **single_device_hardware(device))
    return PretrainingRun(result=result, seconds=time.perf_counter() - t0, epochs=epoch_table(result.metrics_csv))


def baseline(method: str, run: PretrainingRun, data_root: str | Path, cfg: Mapping[str, Any], seed: int = 0
             ) -> tuple[Any, Any, Any, float]:
    """The best network (eval mode, CPU), the data module, the per-band optical means and the baseline's val loss."""
    from ssl4sar.data.datamodules import PretrainDataModule
    from ssl4sar.pretrain.common import mean_predictor_val_loss, module_class, optical_band_means

    datamodule = PretrainDataModule(data_root, dict(cfg), seed=seed)
    datamodule.setup("fit")
    band_means = optical_band_means(datamodule.train_dataset, n_samples=min(64, len(datamodule.train_dataset)))
    module = module_class(method).load_from_checkpoint(run.result.best_checkpoint or run.result.last_checkpoint,
                                                       map_location="cpu").eval()
    return module, datamodule, band_means, float(mean_predictor_val_loss(module, datamodule.val_dataloader(),
                                                                         band_means))


def learning_findings(epochs: pd.DataFrame, best: float, baseline_loss: float) -> str:
    """One paragraph: the best validation loss against the baseline, and how the validation loss moved."""
    val = epochs["val/loss"].dropna() if "val/loss" in epochs else pd.Series(dtype=float)
    below = best < baseline_loss
    text = (f"Best validation L1 **{best:.4f}** against **{baseline_loss:.4f}** for the per-band mean predictor "
            f"({100 * (best - baseline_loss) / baseline_loss:+.1f} %): the network is "
            f"**{'below' if below else 'not below'}** the constant guess after {len(val)} epochs.")
    if len(val):
        text += (f" Its validation loss went from {val.iloc[0]:.4f} after the first epoch to {val.iloc[-1]:.4f} "
                 "after the last"
                 + ("." if below else "; with this budget it has not learned more than the band means."))
    return text


def export_pretrained(method: str, run: PretrainingRun, layout: WorkLayout) -> pd.DataFrame:
    """Copy the best network to ``layout.pretrained(method)`` (chapter 4 reads it) and write ``metrics.csv``.

    Returns the files written (paths relative to the work folder) with their sizes in bytes.
    """
    model_path = layout.pretrained(method)
    with atomic_path(model_path) as tmp:
        shutil.copyfile(run.result.export, tmp)
    metrics = layout.pretrain_run(method) / "metrics.csv"
    write_text_atomic(metrics, run.epochs.to_csv())
    return pd.DataFrame({"file": [layout.relative(p) for p in (model_path, metrics)],
                         "bytes": [p.stat().st_size for p in (model_path, metrics)]})


def per_band_errors(prediction: Any, optical: Any, band_means: Any) -> pd.DataFrame:
    """Mean absolute error per optical band of the network and of the per-band mean predictor (one row per band).

    ``prediction`` and ``optical`` are ``(B, 14, H, W)`` tensors in [0, 1], ``band_means`` ``(14,)``.
    """
    import torch

    from ssl4sar.viz import OPTICAL_TARGET_BANDS

    with torch.no_grad():
        net = (prediction - optical).abs().mean(dim=(0, 2, 3)).double().numpy()
        const = (band_means[None, :, None, None] - optical).abs().mean(dim=(0, 2, 3)).double().numpy()
    bands = pd.DataFrame({"network L1": net, "band-mean L1": const},
                         index=pd.Index(list(OPTICAL_TARGET_BANDS), name="band"))
    bands["network better by (%)"] = 100 * (bands["band-mean L1"] - bands["network L1"]) / bands["band-mean L1"]
    return bands.round({"network L1": 4, "band-mean L1": 4, "network better by (%)": 1})
