"""Tests of fine-tuning (ssl4sar.finetune): the CLI on the smoke preset, exact resume, initialisation from every
checkpoint kind, the full-image validation and the patch IoU."""

from __future__ import annotations

import hashlib
import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning_fakes import record_compiled_calls, setup_on_cpu
from torch.utils.data import DataLoader

from ssl4sar import cli
from ssl4sar.config import load_preset
from ssl4sar.data.caffe import discover, load_scene
from ssl4sar.data.datasets import CaffeValDataset
from ssl4sar.errors import DataError
from ssl4sar.finetune import (
    BEST_MDE_EXPORT,
    MDE_UNDEFINED_M,
    SegmentationModule,
    finetune,
    initialise_model,
    patch_iou,
    rank_finetuned_models,
)
from ssl4sar.metrics import front_result, mde_summary, zone_metrics
from ssl4sar.models.convert import load_model, save_checkpoint, to_official_tyrion
from ssl4sar.models.tyrion import Tyrion
from ssl4sar.postprocess import extract_front
from ssl4sar.training import read_metrics_csv

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def smoke_run(smoke_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``ssl4sar finetune --preset smoke`` run once through the CLI entry point (2 epochs × 4 steps)."""
    out = tmp_path_factory.mktemp("ft_smoke") / "run"
    start = time.perf_counter()
    rc = cli.main(["finetune", "--preset", "smoke", "--data", str(smoke_data), "--out", str(out),
                   "--accelerator", "cpu", "--no-progress"])
    return {"rc": rc, "out": out, "seconds": time.perf_counter() - start}


def _network_state(ckpt: Path) -> dict[str, torch.Tensor]:
    sd = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    return {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}


# ----------------------------------------------------------------------------------------------- CLI smoke run
def test_cli_smoke_run_writes_checkpoints_and_logs(smoke_run: dict[str, Any]) -> None:
    assert smoke_run["rc"] == 0
    out: Path = smoke_run["out"]
    ckpts = out / "checkpoints"
    assert (ckpts / "last.ckpt").is_file()
    assert len(list(ckpts.glob("best-val-mde-*.ckpt"))) == 1
    assert len(list(ckpts.glob("best-val-iou-patch-*.ckpt"))) == 1
    assert (out / BEST_MDE_EXPORT).is_file() and (out / "config.yaml").is_file()
    last = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=False)
    assert (last["epoch"], last["global_step"]) == (1, 8)           # 2 epochs × 16 samples / batch 4
    assert last["hyper_parameters"]["model_config"]["embed_dim"] == load_preset("smoke")["model"]["embed_dim"]
    # our Lightning checkpoints load as a Tyrion through the converter
    model = load_model(ckpts / "last.ckpt")
    assert isinstance(model, Tyrion)

    df = read_metrics_csv(out / "logs" / "metrics.csv")
    val = df.dropna(subset=["val/mde"])
    assert len(val) == 2                                             # one validation per epoch
    for col in ("val/loss", "val/ce_target", "val/ce_context", "val/dice_target", "val/dice_context",
                "val/iou_patch", "val/mde_picture", "val/mde_front_length", "val/missing_fronts",
                "val/iou_image", "val/images", "train/loss_epoch"):
        assert col in df.columns and df[col].notna().any(), col
    assert (val["val/images"] == 1).all()                           # the smoke preset has one validation scene
    assert ((val["val/iou_patch"] >= 0) & (val["val/iou_patch"] <= 1)).all()
    assert ((val["val/missing_fronts"] == 1) == (val["val/mde"] == MDE_UNDEFINED_M)).all()
    assert np.isfinite(df["train/loss_epoch"].dropna()).all()


def test_best_mde_export_holds_the_best_mde_checkpoint(smoke_run: dict[str, Any]) -> None:
    out: Path = smoke_run["out"]
    best = next((out / "checkpoints").glob("best-val-mde-*.ckpt"))
    exported = torch.load(out / BEST_MDE_EXPORT, map_location="cpu", weights_only=True)
    assert exported["format"] == "ssl4sar.tyrion/1"
    assert exported["meta"]["source_checkpoint"] == str(best)
    assert exported["meta"]["selected_by"].startswith("val/mde")
    ref = _network_state(best)
    assert set(exported["state_dict"]) == set(ref)
    assert all(torch.equal(exported["state_dict"][k], ref[k]) for k in ref)


def test_resume_from_last_checkpoint_matches_uninterrupted_run(smoke_run: dict[str, Any], smoke_data: Path,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    first = finetune("smoke", smoke_data, out, max_steps=4, accelerator="cpu", progress=False)  # epoch 0 only
    assert first.global_step == 4 and first.resumed_from is None
    second = finetune("smoke", smoke_data, out, accelerator="cpu", progress=False)
    assert second.resumed_from == out / "checkpoints" / "last.ckpt"
    assert second.global_step == 8
    a = _network_state(smoke_run["out"] / "checkpoints" / "last.ckpt")
    b = _network_state(out / "checkpoints" / "last.ckpt")
    assert set(a) == set(b)
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst == 0.0, f"resumed run differs from the uninterrupted one by up to {worst}"


class _BatchCounter(Callback):
    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.batches += 1


def test_global_batch_is_kept_by_accumulation(smoke_data: Path, tmp_path: Path) -> None:
    cfg = load_preset("smoke", {"finetune.global_batch_size": 8})
    counter = _BatchCounter()
    result = finetune(cfg, smoke_data, tmp_path / "acc", max_epochs=1, accelerator="cpu", progress=False,
                      callbacks=[counter], trainer_kwargs={"num_sanity_val_steps": 0})
    assert result.plan is not None and result.plan.accumulate_grad_batches == 2
    assert counter.batches == 4          # 16 samples per epoch / 4 per batch
    assert result.global_step == 2      # 16 samples / global batch 8


def test_cli_reports_bad_batch_arithmetic(smoke_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        rc = cli.main(["finetune", "--preset", "smoke", "--data", str(smoke_data), "--out", str(tmp_path / "x"),
                       "--set", "finetune.global_batch_size=6", "--accelerator", "cpu"])
    assert rc == 1
    assert "global batch 6" in caplog.text
    assert not (tmp_path / "x" / "checkpoints").exists()


def test_missing_data_folder_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data folder not found"):
        finetune("smoke", tmp_path / "nowhere", tmp_path / "out", accelerator="cpu", progress=False)


def test_non_finite_training_loss_stops_training(smoke_model_config: dict[str, Any], tmp_path: Path) -> None:
    import types

    from ssl4sar.errors import TrainingDiverged
    from ssl4sar.training import DivergenceGuard

    module = SegmentationModule(smoke_model_config, lr=0.5)
    image = torch.rand(2, 1, 64, 64)
    image[0, 0, 3, 3] = float("nan")
    batch = {"image_context": image, "mask_context": torch.randint(0, 4, (2, 64, 64))}
    trainer = types.SimpleNamespace(
        current_epoch=0, global_step=3, optimizers=[torch.optim.SGD(module.parameters(), lr=0.5)],
        strategy=types.SimpleNamespace(reduce_boolean_decision=lambda decision, all=True: decision))
    guard = DivergenceGuard(tmp_path, "finetune")
    loss = module.training_step(batch, 0)
    with pytest.raises(TrainingDiverged, match=r"epoch 0, step 3: the training loss is nan .*learning rate 0.5"):
        guard.on_before_backward(trainer, module, loss)   # before the backward pass of that step
    batch["image_context"] = torch.rand(2, 1, 64, 64)
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)
    guard.on_before_backward(trainer, module, loss)


@pytest.mark.parametrize("elements", [2**20, 2 * 4 * 16 * 16, 1])
def test_validation_losses_are_each_window_as_a_batch_of_one(smoke_model_config: dict[str, Any], elements: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl4sar.finetune as ft
    from ssl4sar.losses import LOSS_PARTS, tyrion_loss

    monkeypatch.setattr(ft, "_CPU_LOSS_ELEMENTS", elements)       # one call, calls of 2 windows (the last of 1), 1
    module = SegmentationModule(smoke_model_config)
    g = torch.Generator().manual_seed(4)
    logits, y = 3 * torch.randn(5, 4, 16, 16, generator=g), torch.randint(0, 4, (5, 16, 16), generator=g)
    totals, parts = module._window_losses(logits, y)
    assert totals.shape == (5,) and all(parts[name].shape == (5,) for name in LOSS_PARTS)
    for i in range(5):  # the reference's validation: batch size 1
        total, one = tyrion_loss(logits[i:i + 1], y[i:i + 1], weights=module.hparams["loss_weights"],
                                 label_smoothing=module.hparams["label_smoothing"])
        assert totals[i].item() == pytest.approx(total.item(), rel=1e-6)
        for name in LOSS_PARTS:
            assert parts[name][i].item() == pytest.approx(one[name].item(), rel=1e-6)


# ----------------------------------------------------------------------------------------------- initialisation
@pytest.fixture(scope="module")
def smoke_model_config() -> dict[str, Any]:
    return dict(load_preset("smoke")["model"])


def _random_tyrion(cfg: dict[str, Any], seed: int) -> Tyrion:
    torch.manual_seed(seed)
    model = Tyrion.from_config(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))   # no zero-initialised parameters left
    return model


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str = "", atol: float = 0.0) -> None:
    keys = [k for k in a if k.startswith(prefix)]
    assert keys
    for k in keys:
        assert torch.allclose(a[k], b[k], rtol=0, atol=atol), k


def test_init_from_our_pretraining_lightning_checkpoint(smoke_model_config: dict[str, Any], tmp_path: Path) -> None:
    src = _random_tyrion(smoke_model_config, 1)
    sd = {f"model.{k}": v for k, v in src.state_dict().items()}
    sd["translator_head.weight"] = torch.randn(14, 32, 1, 1)    # a pretraining head: not part of TYRION
    path = tmp_path / "pretrain.ckpt"
    torch.save({"state_dict": sd, "hyper_parameters": {"model_config": dict(src.config)}}, path)
    module = SegmentationModule(smoke_model_config)
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    desc = module.initialise(path)
    assert desc.startswith(f"checkpoint:{path} [weights ") and module.hparams["init"] == desc
    _assert_same(module.model.state_dict(), src.state_dict())
    assert not torch.equal(before["head.weight"], module.model.state_dict()["head.weight"])


def test_init_from_official_pretraining_checkpoint(smoke_model_config: dict[str, Any], tmp_path: Path) -> None:
    src = _random_tyrion(smoke_model_config, 2)
    sd = to_official_tyrion(src.state_dict())
    sd.update({"decoder.weight": torch.randn(224, 32), "decoder.bias": torch.randn(224),
               "last_model_decoder_layer.weight": torch.randn(3, 32, 1, 1), "mask_token": torch.zeros(1, 1, 32)})
    path = tmp_path / "official_optsimmim.ckpt"
    torch.save({"state_dict": sd}, path)
    model = Tyrion.from_config(smoke_model_config)
    initialise_model(model, path)
    # the 3-channel patch embedding is summed back to one channel: equal up to rounding
    _assert_same(model.state_dict(), src.state_dict(), "encoder.", atol=1e-6)
    _assert_same(model.state_dict(), src.state_dict(), "decoder.")
    _assert_same(model.state_dict(), src.state_dict(), "head.")


def test_init_from_our_format_and_fine_tuning_checkpoint(smoke_model_config: dict[str, Any], smoke_run: dict[str, Any],
                                                         tmp_path: Path) -> None:
    src = _random_tyrion(smoke_model_config, 3)
    path = save_checkpoint(tmp_path / "model.pt", src)
    model = Tyrion.from_config(smoke_model_config)
    initialise_model(model, path)
    _assert_same(model.state_dict(), src.state_dict())
    last = smoke_run["out"] / "checkpoints" / "last.ckpt"
    initialise_model(model, last)
    _assert_same(model.state_dict(), _network_state(last))


def test_init_rejects_a_checkpoint_of_another_architecture(smoke_model_config: dict[str, Any],
                                                           tmp_path: Path) -> None:
    other = _random_tyrion({**smoke_model_config, "embed_dim": 64}, 4)
    path = save_checkpoint(tmp_path / "wide.pt", other)
    with pytest.raises(DataError, match="wide.pt"):
        initialise_model(Tyrion.from_config(smoke_model_config), path)
    with pytest.raises(DataError, match="not found"):
        initialise_model(Tyrion.from_config(smoke_model_config), tmp_path / "missing.ckpt")


@pytest.mark.parametrize(("recorded", "requested", "same"), [
    ("scratch", "Scratch", True), ("scratch", "imagenet", False),
    ("imagenet:/w/swinv2.pth", "imagenet", True), ("imagenet:/w/swinv2.pth", "scratch", False),
    ("checkpoint:{d}/a.pt", "a.pt", True), ("checkpoint:{d}/a.pt", "{d}/./a.pt", True),
    ("checkpoint:{d}/a.pt", "b.pt", False), ("checkpoint:{d}/a.pt", "scratch", False),
    ("checkpoint:{d}/a.pt [weights 0123456789abcdef]", "a.pt", True),   # the weights are compared elsewhere
    ("checkpoint:{d}/a.pt [weights 0123456789abcdef]", "b.pt", False),
    ("{d}/a.pt", "a.pt", True),            # recorded by a run resumed before descriptions were kept
    ("scratch", "a.pt", False)])
def test_same_initialisation_compares_kinds_and_resolved_paths(recorded: str, requested: str, same: bool,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ssl4sar.models.initialise import same_initialisation

    monkeypatch.chdir(tmp_path)
    assert same_initialisation(recorded.format(d=tmp_path), requested.format(d=tmp_path)) is same


def test_weights_fingerprint_follows_the_values_not_the_file(smoke_model_config: dict[str, Any],
                                                           tmp_path: Path) -> None:
    """The fingerprint a run records of its initial weights: equal for equal weights, whatever the file's
    metadata or key order; different after one value changes."""
    from ssl4sar.models.initialise import weights_fingerprint

    src = _random_tyrion(smoke_model_config, 6)
    sd = src.state_dict()
    fp = weights_fingerprint(sd)
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert weights_fingerprint(dict(reversed(list(sd.items())))) == fp
    changed = {k: v.clone() for k, v in sd.items()}
    changed["head.bias"][0] += 1e-6
    assert weights_fingerprint(changed) != fp
    assert weights_fingerprint({k: v.to(torch.bfloat16) for k, v in sd.items()}) != fp   # the dtype is part of it
    # the description of a checkpoint initialisation carries it, and the same weights saved again match
    a = save_checkpoint(tmp_path / "a.pt", src, meta={"note": "first export"})
    b = save_checkpoint(tmp_path / "b.pt", src, meta={"note": "second export"})
    assert a.read_bytes() != b.read_bytes()
    desc_a = initialise_model(Tyrion.from_config(smoke_model_config), a)
    desc_b = initialise_model(Tyrion.from_config(smoke_model_config), b)
    assert desc_a == f"checkpoint:{a} [weights {fp}]" and desc_b == f"checkpoint:{b} [weights {fp}]"


def test_init_imagenet(smoke_model_config: dict[str, Any], tmp_path: Path) -> None:
    src = _random_tyrion(smoke_model_config, 5)
    official = to_official_tyrion(src.state_dict())
    imagenet = {k[len("swin_unet."):]: v for k, v in official.items() if not k.startswith("swin_unet.pred_target")}
    imagenet.update({"norm.weight": torch.ones(256), "norm.bias": torch.zeros(256),
                     "head.weight": torch.randn(1000, 256), "head.bias": torch.zeros(1000)})
    path = tmp_path / "swinv2_tiny_patch4_window16_256.pth"
    torch.save({"model": imagenet}, path)
    model = Tyrion.from_config(smoke_model_config)
    decoder_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("encoder.")}
    assert initialise_model(model, "imagenet", imagenet_weights=path) == f"imagenet:{path}"
    _assert_same(model.state_dict(), src.state_dict(), "encoder.", atol=1e-6)
    _assert_same(model.state_dict(), decoder_before, "decoder.")    # the decoder keeps its initialisation
    with pytest.raises(DataError, match="ImageNet SwinV2-T weights"):
        initialise_model(model, "imagenet", imagenet_weights=tmp_path / "absent.pth")


# ----------------------------------------------------------------------------------------------- validation
def test_patch_iou_hand_computed() -> None:
    target = torch.tensor([[[0, 1], [1, 1]], [[0, 1], [1, 1]]])
    pred = torch.tensor([[[0, 1], [0, 1]], [[2, 1], [1, 1]]])
    # sample 0: IoU_0 = 1/2, IoU_1 = 2/3, 2 classes present → (1/2 + 2/3) / 2
    # sample 1: IoU_0 = 0, IoU_1 = 3/3, class 2 predicted but absent from the target contributes 0 → 1/2
    got = patch_iou(pred, target, 4)
    assert torch.allclose(got, torch.tensor([(0.5 + 2 / 3) / 2, 0.5]))


def test_patch_iou_matches_torchmetrics_jaccard() -> None:
    from torchmetrics.functional.classification import multiclass_jaccard_index

    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 3, (6, 16, 16), generator=g)      # class 3 absent from every target
    pred = torch.randint(0, 4, (6, 16, 16), generator=g)
    got = patch_iou(pred, target, 4)
    for i in range(6):
        per_class = multiclass_jaccard_index(pred[i], target[i], num_classes=4, average="none", zero_division=0)
        expected = per_class.sum() / len(torch.unique(target[i]))
        assert math.isclose(float(got[i]), float(expected), rel_tol=1e-6)


class _Oracle(torch.nn.Module):
    """Returns logits of the ground-truth mask of each known input window (looked up by content)."""

    num_classes = 4

    def __init__(self, lookup: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.lookup = lookup
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        masks = torch.stack([self.lookup[_key(xi)] for xi in x])
        return torch.nn.functional.one_hot(masks, 4).permute(0, 3, 1, 2).float() * 10.0 + self.dummy


def _key(x: torch.Tensor) -> str:
    return hashlib.sha1(x.contiguous().numpy().tobytes()).hexdigest()


def test_full_image_validation_with_a_perfect_network(smoke_data: Path) -> None:
    cfg = load_preset("smoke")
    scenes = discover(smoke_data, "test")                         # 3 scenes of different sizes
    ds = CaffeValDataset(scenes, cfg["data"]["target_size"])
    lookup = {_key(s["image_context"]): s["mask_context"] for s in (ds[i] for i in range(len(ds)))}
    module = SegmentationModule.from_config(cfg)
    module.model = _Oracle(lookup)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    metrics = trainer.validate(module, dataloaders=DataLoader(ds, batch_size=3), verbose=False)[0]

    # independent expectation: the stitched map must be the ground truth itself
    results = []
    for scene in scenes:
        data = load_scene(scene)
        keep = data["bbox"].keep_mask() if data["bbox"] is not None else None
        front = extract_front(data["zones"], scene.meta.resolution_m, bounding_box=keep,
                              min_front_length_m=cfg["postprocess"]["min_front_length_m"])
        results.append(front_result(scene.stem, front, data["front"], scene.meta.resolution_m))
        assert np.nanmean(zone_metrics(data["zones"], data["zones"]).iou) == 1.0
    expected = mde_summary(results)
    assert expected.n_distances > 0, "precondition: the synthetic test scenes have fronts"
    assert metrics["val/images"] == len(scenes)
    assert metrics["val/iou_patch"] == pytest.approx(1.0)
    assert metrics["val/iou_image"] == pytest.approx(1.0)
    assert metrics["val/missing_fronts"] == expected.missing_fronts
    assert metrics["val/mde"] == pytest.approx(expected.pooled_mde_m, rel=1e-6)
    assert metrics["val/mde_picture"] == pytest.approx(expected.picture_normalised_mde_m, rel=1e-6)
    assert metrics["val/mde_front_length"] == pytest.approx(expected.front_length_normalised_mde_m, rel=1e-6)
    table = module.last_validation
    assert table is not None and list(table["stem"]) == [s.stem for s in scenes]
    assert (table["iou"] == 1.0).all()


def test_validation_without_fronts_logs_the_sentinel(smoke_data: Path) -> None:
    cfg = load_preset("smoke")
    ds = CaffeValDataset(discover(smoke_data, "val"), cfg["data"]["target_size"])
    module = SegmentationModule.from_config(cfg)
    with torch.no_grad():                                         # predict "glacier" everywhere: no front at all
        module.model.head.weight.zero_()
        module.model.head.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0]))
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    metrics = trainer.validate(module, dataloaders=DataLoader(ds, batch_size=4), verbose=False)[0]
    assert metrics["val/mde"] == MDE_UNDEFINED_M
    assert metrics["val/missing_fronts"] == 1 and metrics["val/images"] == 1


def test_rank_finetuned_models_prefers_fewer_missing_fronts_then_lower_mde(
    tmp_path: Path, smoke_model_config: dict[str, Any]
) -> None:
    model = Tyrion.from_config(smoke_model_config)
    # (init, exported epoch, val MDE, val images without front at that epoch)
    runs = [("scratch", 1, 40.0, 2), ("optsimmim", 0, 120.0, 0), ("opttranslator", 1, 90.0, 0), ("imagenet", 0, 1e6, 3)]
    for init, epoch, mde, missing in runs:
        run = tmp_path / init
        save_checkpoint(run / "best_mde.pt", model,
                        meta={"val/mde": mde, "epoch": epoch, "selected_by": "val/mde (min)"})
        rows = [f"{e},{10 * (e + 1)},{mde if e == epoch else 500.0},{missing if e == epoch else 1}" for e in (0, 1)]
        (run / "metrics.csv").write_text("epoch,step,val/mde,val/missing_fronts\n" + "\n".join(rows) + "\n")
    ranked = rank_finetuned_models(tmp_path)
    assert ranked["init"].tolist() == ["opttranslator", "optsimmim", "scratch", "imagenet"]
    assert ranked["val images without front"].tolist() == [0.0, 0.0, 2.0, 3.0]
    with pytest.raises(FileNotFoundError, match="best_mde.pt"):
        rank_finetuned_models(tmp_path / "empty")


# ----------------------------------------------------------------------------------------------- torch.compile
def test_compiled_training_forward_matches_eager_and_keeps_one_copy_of_the_weights(
        smoke_model_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """``finetune.compile``: the training step runs through CompiledCall (here with the ``aot_eager`` backend,
    which traces like inductor without its minutes of C++ code generation on this CPU); the loss equals the eager
    one, validation's forward stays eager and the state dict has no second (``_orig_mod``) copy of the weights."""
    import ssl4sar.finetune as finetune_module

    made = record_compiled_calls(monkeypatch, finetune_module)
    torch.manual_seed(0)
    eager = SegmentationModule(smoke_model_config)
    compiled = SegmentationModule(smoke_model_config, compile=True)
    compiled.load_state_dict(eager.state_dict())
    setup_on_cpu(eager, compiled)
    assert len(made) == 1 and compiled.hparams["compile"] and not eager.hparams["compile"]
    batch = {"image_context": torch.rand(2, 1, 64, 64), "mask_context": torch.randint(0, 4, (2, 64, 64))}
    torch.manual_seed(1)   # the same dropout / drop-path draws in both
    loss_eager = eager.training_step(batch, 0)
    torch.manual_seed(1)
    loss_compiled = compiled.training_step(batch, 0)
    assert made[0].failed is None and made[0]._compiled is not None
    assert torch.allclose(loss_eager, loss_compiled, rtol=1e-5, atol=1e-6)
    loss_compiled.backward()
    assert all(p.grad is not None for p in compiled.model.parameters() if p.requires_grad)
    assert not any("_orig_mod" in k for k in compiled.state_dict())
    assert set(compiled.state_dict()) == set(eager.state_dict())


def test_compiled_call_falls_back_to_eager_when_the_compiler_fails(caplog: pytest.LogCaptureFixture) -> None:
    from ssl4sar.models.fast import CompiledCall

    def broken_backend(gm: Any, example_inputs: Any) -> Any:
        raise RuntimeError("compiler exploded")

    lin = torch.nn.Linear(3, 2)
    call = CompiledCall(lin, backend=broken_backend)
    x = torch.rand(4, 3)
    with caplog.at_level("WARNING"):
        out = call(x)
    assert torch.equal(out, lin(x)) and call.failed is not None and "compiler exploded" in call.failed
    assert "running eagerly from now on" in caplog.text
    with pytest.raises(RuntimeError):   # a bad input is the input's error, not a compiler failure
        call(torch.rand(4, 5))


def test_finetune_compile_is_a_typed_preset_key() -> None:
    assert load_preset("paper")["finetune"]["compile"] is False
    with pytest.raises(ValueError, match="finetune.compile: expected true or false"):
        load_preset("smoke", overrides={"finetune": {"compile": "yes"}})


def test_the_run_log_says_when_the_best_mde_is_undefined():
    """A validation with no front anywhere logs val/mde as MDE_UNDEFINED_M for the checkpoint monitor; the run's
    closing log line says so in words instead of printing 1000000.0 as if it were a distance."""
    from ssl4sar.runner import describe_best_score

    assert describe_best_score("val/mde", MDE_UNDEFINED_M) == "undefined (no front found in validation)"
    assert describe_best_score("val/mde", 344.258123) == "344.258"
    assert describe_best_score("val/iou_patch", 0.30150705575942993) == "0.301507"
    assert describe_best_score("val/mde", None) == "none (no validation ran)"
    # the sentinel only means "undefined" for an MDE monitor
    assert describe_best_score("train/loss", MDE_UNDEFINED_M) == "1e+06"
