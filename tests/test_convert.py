"""Checkpoint converters and formats (ssl4sar.models.convert).

Tests marked ``reference`` read the official key list (``tyrion_state_dict.tsv``) from the fixtures.
"""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl4sar.config import load_preset
from ssl4sar.errors import DataError
from ssl4sar.models import Tyrion
from ssl4sar.models.convert import (
    CHECKPOINT_FORMAT,
    DROP_REASONS,
    ConversionReport,
    convert_imagenet_swinv2,
    convert_official_tyrion,
    load_checkpoint,
    load_imagenet_swinv2,
    load_model,
    non_finite_entries,
    non_finite_tensors,
    save_checkpoint,
    to_official_tyrion,
)

torch.set_num_threads(2)

PRETRAIN_HEADS = {  # OptSimMIM wrapper extras (shapes for embed_dim E=32, patch 4, 14 optical bands)
    "decoder.weight": (224, 32), "decoder.bias": (224,),
    "last_model_decoder_layer.weight": (3, 32, 1, 1), "last_model_decoder_layer.bias": (3,),
    "mask_token": (1, 1, 32),
    "patch_embed_after_decoder.proj.weight": (32, 3, 4, 4), "patch_embed_after_decoder.proj.bias": (32,),
    "patch_embed_after_decoder.norm.weight": (32,), "patch_embed_after_decoder.norm.bias": (32,),
}


def _read_tsv(reference_dir: Path) -> list[dict[str, str]]:
    with open(reference_dir / "tyrion_state_dict.tsv", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _shape(row: dict[str, str]) -> tuple[int, ...]:
    return tuple(int(s) for s in row["shape"].split(",")) if row["shape"] else ()


@pytest.fixture(scope="module")
def smoke_cfg() -> dict:
    return load_preset("smoke")["model"]


@pytest.fixture(scope="module")
def smoke_model(smoke_cfg: dict) -> Tyrion:
    torch.manual_seed(3)
    model = Tyrion.from_config({**smoke_cfg, "zero_init_res_post_norm": False}).eval()
    with torch.no_grad():  # make every tensor distinctive, incl. the zero-initialised biases
        for i, p in enumerate(model.parameters()):
            p.add_(0.01 * torch.sin(torch.arange(p.numel(), dtype=p.dtype) + i).reshape(p.shape))
    return model


@pytest.fixture(scope="module")
def paper_shapes() -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = Tyrion.from_config(load_preset("paper")["model"])
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _official_like(model: Tyrion, heads: bool = True) -> dict[str, torch.Tensor]:
    """An official-layout state dict (3-channel patch embed, unused modules, pretraining heads)."""
    sd = to_official_tyrion(model.state_dict())
    n_steps = model.num_stages + 2
    for k in range(n_steps):
        out = model.decoder[k].block.out_channels
        sd[f"swin_unet.pred_target.{k}.block.temb_proj.weight"] = torch.randn(out, 512)
        sd[f"swin_unet.pred_target.{k}.block.temb_proj.bias"] = torch.randn(out)
    sd["swin_unet.outputt.weight"] = torch.randn(model.num_classes, model.embed_dim, 1, 1)
    sd["swin_unet.layers.0.blocks.0.attn.relative_coords_table"] = torch.zeros(1, 7, 7, 2)
    sd["swin_unet.layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(16, 16, dtype=torch.long)
    if heads:
        sd.update({k: torch.randn(*s) for k, s in PRETRAIN_HEADS.items()})
    return sd


# ------------------------------------------------------------------ official TYRION key list (fixture)
@pytest.mark.reference
def test_every_official_param_row_maps(reference_dir: Path, paper_shapes: dict) -> None:
    rows = _read_tsv(reference_dir)
    sd = {r["key"]: torch.empty(_shape(r), device="meta") for r in rows}
    report = ConversionReport()
    ours = convert_official_tyrion(sd, report=report)
    params = [r for r in rows if r["kind"] == "param"]
    buffers = [r for r in rows if r["kind"] == "buffer"]
    assert params and buffers
    for r in params:
        key = r["key"]
        if key in report.dropped:
            # only the two unused official modules may be dropped among the parameters
            assert report.dropped[key] == DROP_REASONS["unused"]
            assert ".temb_proj." in key or key.endswith("outputt.weight")
            continue
        target = report.mapped[key]
        expected = list(_shape(r))
        if target == "encoder.patch_embed.proj.weight":
            expected[1] = 1  # 3 input channels summed into 1
        assert paper_shapes[target] == tuple(expected), key
        assert tuple(ours[target].shape) == tuple(expected)
    for r in buffers:
        assert report.dropped[r["key"]] == DROP_REASONS["buffer"]
    # every tensor of our model is filled by exactly one official row
    assert sorted(report.mapped.values()) == sorted(paper_shapes)
    assert len(set(report.mapped.values())) == len(report.mapped)


@pytest.mark.reference
def test_imagenet_swinv2_from_official_key_names(reference_dir: Path, tmp_path: Path) -> None:
    """A synthetic Microsoft SwinV2-T 256-px state dict (official key names from the TSV) loads strictly."""
    rows = _read_tsv(reference_dir)
    enc = [r for r in rows if r["key"].startswith(("swin_unet.patch_embed.", "swin_unet.layers."))]
    sd: dict[str, torch.Tensor] = {}
    for i, r in enumerate(enc):
        key = r["key"][len("swin_unet."):]
        shape = _shape(r)
        if r["kind"] == "buffer":
            continue
        n = math.prod(shape)
        sd[key] = 0.05 * torch.sin(torch.arange(n, dtype=torch.float32) * 0.37 + i).reshape(shape)
    # the 256-px release: stage grids 64, 32, 16, 8 → masks in stages 1-2 only, stage 4 window 8
    for stage, depth in enumerate((2, 2, 6, 2)):
        win = 8 if stage == 3 else 16
        for b in range(depth):
            pre = f"layers.{stage}.blocks.{b}."
            sd[pre + "attn.relative_coords_table"] = torch.zeros(1, 2 * win - 1, 2 * win - 1, 2)
            sd[pre + "attn.relative_position_index"] = torch.zeros(win * win, win * win, dtype=torch.long)
            if b % 2 == 1 and stage < 2:
                sd[pre + "attn_mask"] = torch.zeros((64 // 2 ** stage // 16) ** 2, 256, 256)
    sd.update({"norm.weight": torch.ones(768), "norm.bias": torch.zeros(768),
               "head.weight": torch.zeros(1000, 768), "head.bias": torch.zeros(1000)})
    path = tmp_path / "swinv2_tiny_patch4_window16_256.pth"
    torch.save({"model": sd}, path)

    torch.manual_seed(0)
    model = Tyrion.from_config(load_preset("paper")["model"])
    decoder_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("encoder.")}
    report = load_imagenet_swinv2(model, path)
    state = model.state_dict()
    for key, ours in report.mapped.items():
        expected = sd[key].sum(dim=1, keepdim=True) if key == "patch_embed.proj.weight" else sd[key]
        torch.testing.assert_close(state[ours], expected, rtol=0, atol=0)
    assert report.mapped["layers.0.downsample.reduction.weight"] == "encoder.layers.1.downsample.reduction.weight"
    assert {report.dropped[k] for k in ("norm.weight", "head.bias")} == {DROP_REASONS["classifier"]}
    # 12 blocks × 2 tables + 2 masks
    assert sum(r == DROP_REASONS["buffer"] for r in report.dropped.values()) == 2 * 12 + 2
    assert sorted(report.mapped.values()) == sorted(k for k in state if k.startswith("encoder."))
    for k, v in decoder_before.items():  # the decoder keeps its random initialisation
        torch.testing.assert_close(state[k], v, rtol=0, atol=0)


# ------------------------------------------------------------------ no fixtures needed
def test_patch_embedding_channel_sum_is_exact() -> None:
    """conv(x repeated ×3, W) == conv(x, W summed over input channels): the official input convention."""
    g = torch.Generator().manual_seed(0)
    w3 = torch.randn(8, 3, 4, 4, generator=g, dtype=torch.float64)
    b = torch.randn(8, generator=g, dtype=torch.float64)
    x = torch.rand(2, 1, 32, 32, generator=g, dtype=torch.float64)
    sd = convert_official_tyrion({"patch_embed.proj.weight": w3, "patch_embed.proj.bias": b})
    w1 = sd["encoder.patch_embed.proj.weight"]
    assert w1.shape == (8, 1, 4, 4)
    torch.testing.assert_close(F.conv2d(x, w1, b, stride=4), F.conv2d(x.repeat(1, 3, 1, 1), w3, b, stride=4),
                               rtol=1e-13, atol=1e-13)


def test_official_round_trip_reproduces_outputs(smoke_model: Tyrion, smoke_cfg: dict) -> None:
    source = copy.deepcopy(smoke_model).double()  # float64: the 3-way split and sum are exact to 1e-15
    official = _official_like(source)
    assert official["swin_unet.patch_embed.proj.weight"].shape[1] == 3
    report = ConversionReport()
    converted = convert_official_tyrion(official, report=report)
    assert set(converted) == set(smoke_model.state_dict())
    assert {k for k, r in report.dropped.items() if r == DROP_REASONS["pretrain_head"]} == set(PRETRAIN_HEADS)
    assert sum(r == DROP_REASONS["unused"] for r in report.dropped.values()) == 6 * 2 + 1
    clone = Tyrion.from_config(smoke_cfg).double().eval()
    clone.load_state_dict(converted)
    x = torch.rand(2, 1, smoke_cfg["img_size"], smoke_cfg["img_size"], dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(clone(x), source(x), rtol=1e-12, atol=1e-12)
    # the official head index follows the decoder steps
    assert "swin_unet.pred_target.6.weight" in official


def test_official_conversion_refuses_unknown_keys(smoke_model: Tyrion) -> None:
    official = _official_like(smoke_model)
    official["swin_unet.layers_up.0.blocks.0.norm1.weight"] = torch.ones(32)
    official["optimizer_thing"] = torch.ones(1)
    with pytest.raises(DataError, match=r"2 key\(s\) cannot be mapped.*layers_up.*optimizer_thing") as exc:
        convert_official_tyrion(official, source="ckpt/foo.ckpt")
    assert "ckpt/foo.ckpt" in str(exc.value)
    with pytest.raises(DataError, match="cannot be mapped"):
        convert_imagenet_swinv2({"pred_target.0.block.conv1.weight": torch.ones(1)})


def test_save_and_load_checkpoint(tmp_path: Path, smoke_model: Tyrion) -> None:
    path = tmp_path / "sub" / "model.pt"
    save_checkpoint(path, smoke_model, meta={"epoch": 7, "val_mde_m": 312.5})
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary leftovers
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == CHECKPOINT_FORMAT and raw["model_config"] == smoke_model.config
    model, meta = load_checkpoint(path)
    assert meta == {"epoch": 7, "val_mde_m": 312.5}
    assert not model.training
    for k, v in smoke_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0)
    again = load_model(path)
    torch.testing.assert_close(again.head.weight, smoke_model.head.weight, rtol=0, atol=0)


def test_load_model_reads_our_checkpoint_file_once(tmp_path: Path, smoke_model: Tyrion,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_checkpoint(tmp_path / "model.pt", smoke_model)
    reads: list[str] = []
    real_load = torch.load

    def counting_load(f: object, *args: object, **kwargs: object) -> object:
        reads.append(str(f))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    model = load_model(path)
    assert reads == [str(path)]                              # was read twice: recognised, then loaded
    torch.testing.assert_close(model.head.weight, smoke_model.head.weight, rtol=0, atol=0)


def test_non_finite_tensors_finds_nan_and_inf_and_not_large_finite_values() -> None:
    big = torch.full((1000,), 3e19)                          # finite, but its squares overflow float32
    half = torch.full((4096,), 60000.0, dtype=torch.float16)  # finite, its 2-norm overflows float16
    tensors = [torch.randn(5, 3), big, torch.tensor([1.0, float("nan")]), half,
               torch.tensor([0.0, float("inf")], dtype=torch.bfloat16), torch.empty(0),
               torch.tensor([float("-inf"), 2.0], dtype=torch.float64), torch.full((3,), 1e300, dtype=torch.float64)]
    assert non_finite_tensors(tensors) == [2, 4, 6]
    assert non_finite_tensors([]) == [] and non_finite_tensors(tensors[:2]) == []
    sd = {"a": tensors[0], "big": big, "nan": tensors[2], "index": torch.arange(3), "note": "text"}
    assert non_finite_entries(sd) == ["nan"]


def test_load_model_recognises_lightning_checkpoints(tmp_path: Path, smoke_model: Tyrion,
                                                      smoke_cfg: dict) -> None:
    x = torch.rand(1, 1, smoke_cfg["img_size"], smoke_cfg["img_size"])
    with torch.no_grad():
        expected = smoke_model(x)
    # ours: network under "model.", config in hyper_parameters, other attributes ignored
    ours = {"state_dict": {**{f"model.{k}": v for k, v in smoke_model.state_dict().items()},
                           "opt_head.weight": torch.ones(14, 32, 1, 1)},
            "hyper_parameters": {"model_config": smoke_model.config}, "epoch": 3}
    torch.save(ours, tmp_path / "ours.ckpt")
    with torch.no_grad():
        torch.testing.assert_close(load_model(tmp_path / "ours.ckpt")(x), expected, rtol=0, atol=0)
    # official pretraining checkpoint: needs the model config (the default would be the paper model)
    official = {"state_dict": _official_like(smoke_model), "epoch": 11}
    torch.save(official, tmp_path / "official.ckpt")
    with torch.no_grad():
        out = load_model(tmp_path / "official.ckpt", model_config=smoke_cfg)(x)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)  # float32 3-way split of the patch embed
    with pytest.raises(DataError, match="official.ckpt.*shape mismatch"):
        load_model(tmp_path / "official.ckpt")  # paper config does not fit the smoke weights


def test_load_model_errors_name_the_file(tmp_path: Path, smoke_model: Tyrion) -> None:
    with pytest.raises(DataError, match="missing.ckpt: checkpoint file not found"):
        load_model(tmp_path / "missing.ckpt")
    (tmp_path / "garbage.ckpt").write_bytes(b"this is not a checkpoint")
    with pytest.raises(DataError, match="garbage.ckpt: cannot read checkpoint"):
        load_model(tmp_path / "garbage.ckpt")
    torch.save({"state_dict": {"net.weight": torch.ones(2)}}, tmp_path / "other.ckpt")
    with pytest.raises(DataError, match="other.ckpt.*neither ours"):
        load_model(tmp_path / "other.ckpt")
    torch.save({"state_dict": {"model.head.weight": torch.ones(2)}}, tmp_path / "nocfg.ckpt")
    with pytest.raises(DataError, match="nocfg.ckpt.*model_config"):
        load_model(tmp_path / "nocfg.ckpt")
    torch.save({"format": "something/9", "state_dict": {}}, tmp_path / "fmt.pt")
    with pytest.raises(DataError, match="fmt.pt: not an ssl4sar TYRION checkpoint"):
        load_checkpoint(tmp_path / "fmt.pt")
    sd = smoke_model.state_dict()
    sd.pop("head.bias")
    torch.save({"format": CHECKPOINT_FORMAT, "model_config": smoke_model.config, "state_dict": sd, "meta": {}},
               tmp_path / "incomplete.pt")
    with pytest.raises(DataError, match=r"incomplete.pt.*missing: head\.bias"):
        load_checkpoint(tmp_path / "incomplete.pt")


def test_imagenet_loader_is_strict(tmp_path: Path, smoke_model: Tyrion, smoke_cfg: dict) -> None:
    """Weights of another width are reported as shape mismatches, naming the file."""
    enc = {k[len("swin_unet."):]: v for k, v in to_official_tyrion(smoke_model.state_dict()).items()
           if k.startswith(("swin_unet.patch_embed.", "swin_unet.layers."))}
    torch.save({"model": enc}, tmp_path / "w.pth")
    fits = Tyrion.from_config(smoke_cfg)
    report = load_imagenet_swinv2(fits, tmp_path / "w.pth")
    assert len(report.mapped) == len([k for k in fits.state_dict() if k.startswith("encoder.")])
    wider = Tyrion.from_config({**smoke_cfg, "embed_dim": 64})
    with pytest.raises(DataError, match="w.pth.*shape mismatch"):
        load_imagenet_swinv2(wider, tmp_path / "w.pth")
    # strictness: a missing encoder parameter and an unknown key are both reported by name
    del enc["layers.2.blocks.0.mlp.fc2.bias"]
    torch.save({"model": enc}, tmp_path / "w.pth")
    with pytest.raises(DataError, match=r"w.pth.*missing: encoder\.layers\.2\.blocks\.0\.mlp\.fc2\.bias"):
        load_imagenet_swinv2(fits, tmp_path / "w.pth")
    enc["layers.2.blocks.0.mlp.fc2.bias"] = torch.zeros(128)
    enc["absolute_pos_embed"] = torch.zeros(1, 256, 32)
    torch.save({"model": enc}, tmp_path / "w.pth")
    with pytest.raises(DataError, match="w.pth.*absolute_pos_embed"):
        load_imagenet_swinv2(fits, tmp_path / "w.pth")


def test_to_official_inverts_conversion(smoke_model: Tyrion) -> None:
    sd = smoke_model.state_dict()
    back = convert_official_tyrion(to_official_tyrion(sd))
    assert set(back) == set(sd)
    for k, v in sd.items():
        torch.testing.assert_close(back[k], v, rtol=1e-6, atol=1e-7)
    assert np.isclose(float(back["head.bias"][0]), float(sd["head.bias"][0]))
