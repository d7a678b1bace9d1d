"""The fast path's accuracy against the reference path (``ssl4sar.bench.accuracy``) on the smoke network: class maps
agree almost everywhere and the MDE barely moves (loose bounds: this is the tiny smoke network)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ssl4sar.bench.accuracy import FullForward, fast_path_accuracy, mde_change_by_scene
from ssl4sar.bench.report import _accuracy_of
from ssl4sar.config import load_preset
from ssl4sar.data.caffe import discover
from ssl4sar.data.synthetic import generate
from ssl4sar.models.tyrion import Tyrion


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("accdata"), preset="smoke", seed=0, layouts=("caffe",))["caffe"]


def _decisive_smoke_model(seed: int = 0) -> Tyrion:
    """The random smoke network with its 1 × 1 head scaled up: spatially varied class maps whose argmax is not a
    coin toss at every pixel (an untrained network's logits are nearly tied everywhere, so any rounding flips them;
    a trained network's are not). Training one here would cost minutes; the demo-model numbers of the benchmark's
    ``--accuracy`` are the real measurement."""
    torch.manual_seed(seed)
    model = Tyrion.from_config(load_preset("smoke")["model"]).eval()
    for m in model.modules():  # non-zero residual post-norms: the encoder shapes the features
        if isinstance(m, torch.nn.LayerNorm):
            torch.nn.init.normal_(m.weight, 1.0, 0.2)
    with torch.no_grad():
        model.head.weight.mul_(30.0)
    return model


def _pooled(score: dict) -> float:
    return sum(s for s, _ in score["fronts"].values()) / sum(n for _, n in score["fronts"].values())


def test_mde_change_by_scene_names_the_image_and_sums_to_the_pooled_change() -> None:
    ref = {"fronts": {"a": (100.0, 1), "b": (300.0, 3)}}  # pooled MDE 100 m
    # a front piece kept on one path only (b: 2 more distances at 500 m), image c found only there
    fast = {"fronts": {"a": (100.0, 1), "b": (1300.0, 5), "c": (90.0, 1)}}
    shares = mde_change_by_scene(ref, fast)
    assert [r["image"] for r in shares] == ["b", "c"]  # a is unchanged: no share
    assert shares[0]["share_m"] == pytest.approx((1000.0 - 100.0 * 2) / 7)
    assert shares[1]["share_m"] == pytest.approx((90.0 - 100.0) / 7) and shares[1]["reference_mean_m"] is None
    assert sum(r["share_m"] for r in shares) == pytest.approx(_pooled(fast) - _pooled(ref))
    rng = np.random.default_rng(0)
    for _ in range(20):  # any two scores: the shares add up exactly
        a = {"fronts": {f"i{k}": (float(rng.uniform(1, 1e4)), int(rng.integers(1, 50))) for k in range(8)
                        if rng.random() < 0.8}}
        b = {"fronts": {f"i{k}": (float(rng.uniform(1, 1e4)), int(rng.integers(1, 50))) for k in range(8)
                        if rng.random() < 0.8}}
        if a["fronts"] and b["fronts"]:
            total = sum(r["share_m"] for r in mde_change_by_scene(a, b))
            assert total == pytest.approx(_pooled(b) - _pooled(a))
    assert mde_change_by_scene(ref, {"fronts": {}}) == []
    acc = {"checkpoint": "c.pt", "split": "test", "data": "d", "scenes": 3, "stride": 128, "agreement": 0.999,
           "pixels": 10, "reference_mde_m": 100.0, "fast_mde_m": 200.0, "mde_change_m": 100.0,
           "reference_missing_fronts": 0, "fast_missing_fronts": 0, "largest_mde_shares": shares[:1]}
    assert "Largest shares of the change: b +114.29 m (100 m over 3 distances → 260 m over 5 distances)." \
        in _accuracy_of(acc)[0]


def test_full_forward_hides_centre_logits() -> None:
    model = Tyrion.from_config(load_preset("smoke")["model"])
    wrapped = FullForward(model)
    assert not hasattr(wrapped, "centre_logits") and wrapped.img_size == 64


@pytest.mark.slow  # about 40 s on the loaded 2-core machine: the reference path runs one window at a time
def test_fast_path_agrees_with_reference_on_the_smoke_model(data: Path) -> None:
    model = _decisive_smoke_model()
    r = fast_path_accuracy(model, data, split="test", device="cpu", stride_fractions=(0.5,))
    assert r["scenes"] == len(discover(data, "test")) and r["pixels"] > 0
    assert r["agreement"] >= 0.98, r  # measured 0.990 (bf16 on a native-bf16 CPU; 1.0 where fp32)
    assert r["reference_iou"] == pytest.approx(r["fast_iou"], abs=0.02)
    assert r["disagreeing_px"] == round((1 - r["agreement"]) * r["pixels"])
    if math.isfinite(r["reference_mde_m"]) and math.isfinite(r["fast_mde_m"]):
        assert abs(r["mde_change_m"]) <= max(5.0, 0.05 * r["reference_mde_m"]), r
    assert len(r["largest_mde_shares"]) <= 3
    if math.isfinite(r["mde_change_m"]) and r["mde_change_m"] and r["paired_images"] == r["scenes"]:
        assert r["largest_mde_shares"]  # a change has images that carry it
    (coarse,) = r["strides"]
    assert coarse["stride"] == 32 and coarse["windows_ratio"] < 0.5  # C/2 instead of C/4: fewer windows


def test_missing_accuracy_inputs_are_refused_before_any_benchmark_runs(tmp_path: Path, data: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A missing ``--accuracy`` checkpoint or data folder was only reported after every other benchmark had run
    (an hour on a GPU)."""
    from ssl4sar.bench import run_benchmarks
    from ssl4sar.commands.bench import main
    from ssl4sar.errors import DataError

    out = tmp_path / "out"
    only = ["postprocess_mde", "accuracy"]
    with pytest.raises(DataError, match=r"missing\.pt: checkpoint file not found"):
        run_benchmarks(out, quick=True, device="cpu", preset="smoke", only=only,
                       accuracy=(tmp_path / "missing.pt", data))
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"")  # only its existence is checked up front
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--quick", "--preset", "smoke", "--device", "cpu", "--out", str(out), "--only", *only,
                 "--accuracy", str(ckpt), str(empty)]) == 2
    assert f"{empty / 'sar_images' / 'test'}: folder not found" in caplog.text
    assert not (out / "bench.json").exists()  # nothing ran, nothing written
