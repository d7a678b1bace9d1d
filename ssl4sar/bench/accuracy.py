"""Accuracy of the fast path, measured: a trained checkpoint predicts a CaFFe split on the reference path (fp32,
timm's attention, full decoder, one window per forward pass, no cuDNN autotuning: the official code) and on the
library's fast path; the class maps are compared pixel by pixel and both are scored (post-processing + MDE,
:func:`ssl4sar.evaluate.evaluate_predictions`). Optionally the fast path is also run at coarser window strides, to
show what a faster stride costs in MDE.

``python -m ssl4sar.bench --accuracy CKPT DATA`` adds this as the ``accuracy`` row of a benchmark run.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssl4sar.bench.paths import REFERENCE, ExecPath, fast_path, runner_for

__all__ = ["FullForward", "fast_path_accuracy", "mde_change_by_scene", "predict_split"]

log = logging.getLogger(__name__)


class FullForward(torch.nn.Module):
    """A model seen only through its ``forward`` (no ``centre_logits``): sliding-window inference then runs the
    whole decoder and crops, as the official code does."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.img_size = getattr(model, "img_size", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _on_path(model: torch.nn.Module, path: ExecPath, device: torch.device) -> torch.nn.Module:
    m = copy.deepcopy(model)
    path.prepare(m, device)
    m.eval()
    return m if path.centre_only else FullForward(m)


def predict_split(model: torch.nn.Module, scenes: Sequence[Any], path: ExecPath, *, device: torch.device,
                  stride: int, sigma: float, batch_size: int) -> tuple[dict[str, np.ndarray], float]:
    """Class maps ``{stem: (H, W) uint8}`` of ``scenes`` (CaFFe scenes) on ``path`` without TTA, and the seconds."""
    from ssl4sar.data.caffe import load_scene
    from ssl4sar.inference import sliding_window_probabilities

    m = _on_path(model, path, device)
    c = int(model.img_size)
    maps: dict[str, np.ndarray] = {}
    seconds = 0.0
    with contextlib.ExitStack() as stack:
        run = runner_for(path, device, stack)
        for scene in scenes:
            image = load_scene(scene)["image"]
            t0 = time.perf_counter()
            prob = run(functools.partial(sliding_window_probabilities, m, image, context_size=c, stride=stride,
                                         sigma=sigma, **path.window_settings(device, batch_size)))()
            seconds += time.perf_counter() - t0
            maps[scene.stem] = prob.argmax(axis=0).astype(np.uint8)
    return maps, seconds


def _score(maps: Mapping[str, np.ndarray], data_dir: str | Path, split: str,
           min_front_length_m: float | None = None) -> dict[str, float]:
    from ssl4sar.evaluate import evaluate_predictions

    kw = {} if min_front_length_m is None else {"min_front_length_m": float(min_front_length_m)}
    with tempfile.TemporaryDirectory(prefix="ssl4sar-accuracy-") as tmp:
        res = evaluate_predictions(maps, data_dir, split, tmp, figures=0, progress=False, **kw)
    s = res.summary

    def num(v: Any) -> float:
        return float("nan") if v is None else float(v)

    # no MDE (None) when every front is missing: a weak model, or post-processing dropped all pieces
    per = res.per_image.set_index("stem")
    found = per[~per["missing"].astype(bool)]
    return {"mde_m": num(s["pooled_mde_m"]), "missing_fronts": int(s["missing_fronts"]),
            "n_distances": int(s.get("n_distances") or 0), "mean_iou": num(s["mean_iou"]),
            "fronts": {str(k): (float(r["sum_m"]), int(r["n_distances"])) for k, r in found.iterrows()}}


def _paired_mde(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[float, float, int]:
    """Pooled MDE (m) of ``a`` and of ``b`` over the images where both found a front, and their number: the MDE
    change of the same fronts, not of a different set of found fronts."""
    both = sorted(set(a["fronts"]) & set(b["fronts"]))
    if not both:
        return float("nan"), float("nan"), 0

    def pooled(x: Mapping[str, Any]) -> float:
        return sum(x["fronts"][k][0] for k in both) / max(1, sum(x["fronts"][k][1] for k in both))

    return pooled(a), pooled(b), len(both)


def mde_change_by_scene(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each image's exact share of the pooled MDE change from score ``a`` to score ``b`` (``_score`` dicts), largest
    magnitude first; the shares sum to ``b``'s pooled MDE minus ``a``'s.

    With S, N the summed distances and their number,
    S_b/N_b − S_a/N_a = Σ_k [(s_bk − s_ak) − MDE_a (n_bk − n_ak)] / N_b, so an image whose front gains distances at
    exactly ``a``'s MDE moves nothing. Why: the pooled MDE of a weak model can jump when one front piece crosses the
    post-processing's 750 m minimum length; this names the image.
    """
    n_b = sum(n for _, n in b["fronts"].values())
    if not n_b or not a["fronts"]:
        return []
    mde_a = sum(s for s, _ in a["fronts"].values()) / sum(n for _, n in a["fronts"].values())
    out = []
    for k in sorted(set(a["fronts"]) | set(b["fronts"])):
        (sa, na), (sb, nb) = a["fronts"].get(k, (0.0, 0)), b["fronts"].get(k, (0.0, 0))
        share = ((sb - sa) - mde_a * (nb - na)) / n_b
        if share:
            out.append({"image": k, "share_m": share, "reference_distances": na, "fast_distances": nb,
                        "reference_mean_m": sa / na if na else None, "fast_mean_m": sb / nb if nb else None})
    return sorted(out, key=lambda r: -abs(r["share_m"]))


def fast_path_accuracy(checkpoint: str | Path | torch.nn.Module, data_dir: str | Path, *, split: str = "test",
                       device: str | torch.device = "cpu", preset: str | Mapping[str, Any] | None = None,
                       strides: Sequence[int] = (), stride_fractions: Sequence[float] = (),
                       batch_size: int = 8) -> dict[str, Any]:
    """Class-map agreement and MDE change of the fast path against the reference path on a CaFFe split.

    Args:
        checkpoint: a checkpoint (:func:`ssl4sar.models.convert.load_model`) or a model in memory.
        data_dir, split: the CaFFe data and split (no TTA: one map per scene and path).
        device: where the model runs.
        preset: window stride / σ from this preset's ``inference`` section scaled to the model
            (:func:`ssl4sar.evaluate.inference_settings`); default the paper's ratios (C/4, C/16).
        strides: further strides (px) for the fast path: their MDE and agreement with the reference at the default
            stride (what a faster stride costs). stride_fractions: further strides as fractions of the window
            side C (``0.5`` = C/2, the coarsest stride that still covers every pixel).
        batch_size: windows per forward pass of the fast path.

    Returns ``agreement`` (fraction of pixels whose class is the same on both paths), ``disagreeing_px``,
    ``pixels``, ``reference_mde_m``, ``fast_mde_m``, ``mde_change_m`` (fast − reference), ``paired_*`` (the MDE of
    both over the ``paired_images`` where both found a front, and its change), the same with every
    front piece kept (``*_all_pieces_*``: no 750 m minimum length), the IoUs and missing fronts of both,
    ``reference_s`` / ``fast_s`` (inference seconds), ``largest_mde_shares`` (the 3 images that moved the pooled MDE
    most, :func:`mde_change_by_scene`) and ``strides`` (one dict per extra stride).
    """
    from ssl4sar.data.caffe import discover
    from ssl4sar.evaluate import inference_settings
    from ssl4sar.models.convert import load_model

    dev = torch.device(device)
    model = checkpoint if isinstance(checkpoint, torch.nn.Module) else load_model(Path(checkpoint), map_location="cpu")
    model = model.float().eval()
    scenes = discover(data_dir, split)
    c = int(model.img_size)
    settings = inference_settings(c, preset=preset)
    kw = {"device": dev, "sigma": settings.sigma, "batch_size": batch_size}
    ref_maps, ref_s = predict_split(model, scenes, REFERENCE, stride=settings.stride, **kw)
    fast = fast_path(dev)
    fast_maps, fast_s = predict_split(model, scenes, fast, stride=settings.stride, **kw)
    ref_score, fast_score = _score(ref_maps, data_dir, split), _score(fast_maps, data_dir, split)

    def agreement(maps: Mapping[str, np.ndarray]) -> tuple[float, int, int]:
        same = sum(int(np.count_nonzero(maps[k] == ref_maps[k])) for k in ref_maps)
        total = sum(v.size for v in ref_maps.values())
        return same / total, total - same, total

    # a weak model's fronts may all fall below the 750 m piece length: score every piece as well (no MDE otherwise)
    ref_all, fast_all = _score(ref_maps, data_dir, split, 0.0), _score(fast_maps, data_dir, split, 0.0)
    agree, differ, total = agreement(fast_maps)
    paired_ref, paired_fast, n_paired = _paired_mde(ref_score, fast_score)
    out: dict[str, Any] = {
        "checkpoint": str(checkpoint) if not isinstance(checkpoint, torch.nn.Module) else type(checkpoint).__name__,
        "data": str(data_dir), "split": split, "scenes": len(scenes), "context_size": c, "stride": settings.stride,
        "sigma": settings.sigma, "fast_path": fast.describe(dev), "agreement": agree, "disagreeing_px": differ,
        "pixels": total, "reference_mde_m": ref_score["mde_m"], "fast_mde_m": fast_score["mde_m"],
        "mde_change_m": fast_score["mde_m"] - ref_score["mde_m"], "paired_images": n_paired,
        "paired_reference_mde_m": paired_ref, "paired_fast_mde_m": paired_fast,
        "paired_mde_change_m": paired_fast - paired_ref, "reference_iou": ref_score["mean_iou"],
        "fast_iou": fast_score["mean_iou"], "reference_missing_fronts": ref_score["missing_fronts"],
        "fast_missing_fronts": fast_score["missing_fronts"], "reference_distances": ref_score["n_distances"],
        "fast_distances": fast_score["n_distances"], "reference_mde_all_pieces_m": ref_all["mde_m"],
        "fast_mde_all_pieces_m": fast_all["mde_m"], "mde_change_all_pieces_m": fast_all["mde_m"] - ref_all["mde_m"],
        "reference_missing_fronts_all_pieces": ref_all["missing_fronts"],
        "fast_missing_fronts_all_pieces": fast_all["missing_fronts"], "reference_s": ref_s, "fast_s": fast_s,
        "largest_mde_shares": mde_change_by_scene(ref_score, fast_score)[:3], "strides": [],
    }
    for s in sorted({*map(int, strides), *(int(round(f * c)) for f in stride_fractions)}):
        if int(s) == settings.stride:
            continue
        maps, sec = predict_split(model, scenes, fast, stride=int(s), **kw)
        score, every = _score(maps, data_dir, split), _score(maps, data_dir, split, 0.0)
        a, _, _ = agreement(maps)
        pr, pf, n_pair = _paired_mde(ref_score, score)
        out["strides"].append({"stride": int(s), "mde_m": score["mde_m"],
                               "mde_change_m": score["mde_m"] - ref_score["mde_m"], "agreement": a,
                               "missing_fronts": score["missing_fronts"], "seconds": sec,
                               "mde_all_pieces_m": every["mde_m"], "paired_images": n_pair,
                               "paired_mde_change_m": pf - pr,
                               "mde_change_all_pieces_m": every["mde_m"] - ref_all["mde_m"],
                               "windows_ratio": _window_ratio(scenes, c, settings.stride, int(s))})
    log.info("accuracy: agreement %.5f, MDE %.2f m (reference) vs %.2f m (fast)", agree, out["reference_mde_m"],
             out["fast_mde_m"])
    return out


def _window_ratio(scenes: Sequence[Any], c: int, base: int, stride: int) -> float:
    """Windows at ``stride`` over windows at ``base`` for these scenes (the cost ratio of the stride)."""
    from ssl4sar.bench.windows import windows_in_scene
    from ssl4sar.data.caffe import read_sar

    shapes = [read_sar(sc.sar_path).shape for sc in scenes]
    return sum(windows_in_scene(s, c, stride) for s in shapes) / sum(windows_in_scene(s, c, base) for s in shapes)
