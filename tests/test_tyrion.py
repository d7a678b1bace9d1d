"""Unit tests of the TYRION network (ssl4sar.models.tyrion): structure, shapes, presets, pieces."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssl4sar.config import load_preset
from ssl4sar.models import Tyrion

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def smoke_model() -> Tyrion:
    torch.manual_seed(0)
    return Tyrion.from_config(load_preset("smoke")["model"]).eval()


@pytest.fixture(scope="module")
def paper_model() -> Tyrion:
    """The paper model on the meta device: structure and shapes only, no memory, no init cost."""
    with torch.device("meta"):
        return Tyrion.from_config(load_preset("paper")["model"])


def _sar(cfg: dict, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, cfg["img_size"], cfg["img_size"], generator=g)


@pytest.mark.parametrize("preset", ["smoke", "demo"])
def test_presets_build_and_run(preset: str) -> None:
    cfg = load_preset(preset)["model"]
    torch.manual_seed(0)
    model = Tyrion.from_config(cfg).eval()
    x = _sar(cfg)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, cfg["num_classes"], cfg["img_size"], cfg["img_size"])
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    # the two samples differ, so must their predictions
    assert not torch.allclose(y[0], y[1])
    # shifted-window masks: 0 within a region, −100 across regions (as in the official code)
    masks = [blk.attn_mask for stage in model.encoder.layers for blk in stage.blocks if blk.attn_mask is not None]
    assert all(set(m.unique().tolist()) == {0.0, -100.0} for m in masks)
    assert (len(masks) > 0) == (preset == "demo")  # smoke has one block per stage: no shifted blocks


def test_paper_model_parameter_count(paper_model: Tyrion) -> None:
    # spec §4.6: 50 033 614 parameters take part in the official forward pass with a 3-channel patch
    # embedding; ours takes 1 channel, i.e. 2 × 96 × 4 × 4 fewer weights.
    assert paper_model.num_params() == 50_033_614 - 2 * 96 * 4 * 4
    assert paper_model.num_params(trainable_only=True) == paper_model.num_params()
    names = [n for n, _ in paper_model.named_parameters()]
    assert not any("temb_proj" in n or "outputt" in n for n in names)
    assert not any(n.startswith(("encoder.norm.", "encoder.head.")) for n in names)


def test_paper_model_windows_and_shifts(paper_model: Tyrion) -> None:
    """Window 16 everywhere; shifted blocks shift by 8 except in stage 4 (16×16 grid → global, no shift)."""
    stages = paper_model.encoder.layers
    assert [tuple(s.blocks[0].input_resolution) for s in stages] == [(128, 128), (64, 64), (32, 32), (16, 16)]
    for i, stage in enumerate(stages):
        for j, blk in enumerate(stage.blocks):
            assert tuple(blk.window_size) == (16, 16)
            expected_shift = (8, 8) if (j % 2 == 1 and i < 3) else (0, 0)
            assert tuple(blk.shift_size) == expected_shift
            if expected_shift != (0, 0):
                grid = 128 // 2 ** i
                assert blk.attn_mask.shape == ((grid // 16) ** 2, 256, 256)
            else:
                assert blk.attn_mask is None


def test_pieces_shapes_and_composition(smoke_model: Tyrion) -> None:
    cfg = smoke_model.config
    x = _sar(cfg)
    with torch.no_grad():
        tokens = smoke_model.embed(x)
        grid = cfg["img_size"] // cfg["patch_size"]
        assert tokens.shape == (2, grid, grid, cfg["embed_dim"])
        skips = smoke_model.encode(tokens)
        assert [tuple(s.shape) for s in skips] == [
            (2, cfg["embed_dim"] * 2 ** i, grid // 2 ** i, grid // 2 ** i) for i in range(4)]
        feats = smoke_model.decode(skips)
        assert feats.shape == (2, cfg["embed_dim"], cfg["img_size"], cfg["img_size"])
        logits = smoke_model.head(feats)
        torch.testing.assert_close(logits, smoke_model(x), rtol=0, atol=0)


def test_skips_are_pre_merging_stage_outputs(smoke_model: Tyrion) -> None:
    """Skip i is the input of stage i+1's patch merging, which concatenates (0,0),(1,0),(0,1),(1,1)."""
    with torch.no_grad():
        tokens = smoke_model.embed(_sar(smoke_model.config, batch=1))
        skips = smoke_model.encode(tokens)
        for i in range(3):
            merge = smoke_model.encoder.layers[i + 1].downsample
            s = skips[i].permute(0, 2, 3, 1)  # NHWC
            official = torch.cat([s[:, 0::2, 0::2], s[:, 1::2, 0::2], s[:, 0::2, 1::2], s[:, 1::2, 1::2]], dim=-1)
            official = merge.norm(merge.reduction(official))
            torch.testing.assert_close(merge(s), official)
            blocks_out = official
            for blk in smoke_model.encoder.layers[i + 1].blocks:
                blocks_out = blk(blocks_out)
            torch.testing.assert_close(blocks_out.permute(0, 3, 1, 2), skips[i + 1])


def test_token_order_is_row_major(smoke_model: Tyrion) -> None:
    """A change in one 4×4 pixel patch changes exactly the token at (row, col) of that patch."""
    cfg = smoke_model.config
    p = cfg["patch_size"]
    x = _sar(cfg, batch=1)
    x2 = x.clone()
    x2[0, 0, 2 * p:3 * p, 5 * p:6 * p] += 0.5
    with torch.no_grad():
        diff = (smoke_model.embed(x2) - smoke_model.embed(x)).abs().sum(-1)[0]
    changed = torch.nonzero(diff > 0).tolist()
    assert changed == [[2, 5]]


def test_wrong_input_shape_is_rejected(smoke_model: Tyrion) -> None:
    s = smoke_model.config["img_size"]
    with pytest.raises(ValueError, match="expects input of shape"):
        smoke_model(torch.rand(1, 3, s, s))
    with pytest.raises(ValueError, match="expects input of shape"):
        smoke_model(torch.rand(1, 1, s + 16, s + 16))


@pytest.mark.parametrize(("override", "message"), [
    ({"embed_dim": 48}, "multiple of 32"),
    ({"img_size": 72}, "multiple of"),
    ({"depths": [1, 1, 1], "num_heads": [1, 2, 4, 8]}, "same length"),
    ({"num_heads": [3, 2, 4, 8]}, "not divisible"),
    ({"wndow_size": 8}, "unknown keys"),
])
def test_invalid_configs(override: dict, message: str) -> None:
    cfg = {**load_preset("smoke")["model"], **override}
    with pytest.raises(ValueError, match=message):
        Tyrion.from_config(cfg)


def test_decoder_dropout_only_in_training() -> None:
    cfg = load_preset("smoke")["model"]
    torch.manual_seed(1)
    model = Tyrion.from_config(cfg)
    x = _sar(cfg, batch=1)
    with torch.no_grad():
        model.train()
        a, b = model(x), model(x)
        model.eval()
        c, d = model(x), model(x)
    assert not torch.allclose(a, b)
    torch.testing.assert_close(c, d, rtol=0, atol=0)
    dropouts = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == len(model.decoder) and all(m.p == cfg["decoder_dropout"] for m in dropouts)


def test_every_parameter_gets_a_gradient() -> None:
    """No dead parameters (DDP can run without find_unused_parameters)."""
    cfg = load_preset("smoke")["model"]
    torch.manual_seed(2)
    model = Tyrion.from_config({**cfg, "zero_init_res_post_norm": False}).train()
    x = _sar(cfg)
    target = torch.randint(0, cfg["num_classes"], (2, cfg["img_size"], cfg["img_size"]))
    F.cross_entropy(model(x), target).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_res_post_norm_initialisation() -> None:
    cfg = load_preset("smoke")["model"]
    zero = Tyrion.from_config(cfg)
    official = Tyrion.from_config({**cfg, "zero_init_res_post_norm": False})
    for model, value in ((zero, 0.0), (official, 1.0)):
        for stage in model.encoder.layers:
            for blk in stage.blocks:
                assert torch.all(blk.norm1.weight == value) and torch.all(blk.norm2.weight == value)
                assert torch.all(blk.norm1.bias == 0)
    # other LayerNorms are the usual (1, 0)
    assert torch.all(zero.encoder.patch_embed.norm.weight == 1)


def test_construction_fetches_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import timm.models._builder as builder

    def refuse(*args, **kwargs):
        raise AssertionError("attempted to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(builder, "load_pretrained", refuse)
    model = Tyrion.from_config(load_preset("smoke")["model"])
    assert model.num_params() > 0


def test_config_round_trip(smoke_model: Tyrion) -> None:
    clone = Tyrion.from_config(smoke_model.config)
    assert clone.config == smoke_model.config
    assert {k: v.shape for k, v in clone.state_dict().items()} == \
        {k: v.shape for k, v in smoke_model.state_dict().items()}


@pytest.mark.parametrize("size", [32, 33, 2, 64, 62])
def test_centre_logits_equal_the_cropped_forward(size: int) -> None:
    torch.manual_seed(0)
    model = Tyrion.from_config(load_preset("smoke")["model"]).eval()
    for m in model.modules():  # non-zero residual post-norms: every block changes the features
        if isinstance(m, torch.nn.LayerNorm):
            torch.nn.init.normal_(m.weight, 1.0, 0.2)
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        full = model(x)
        centre = model.centre_logits(x, size)
    lo = (64 - size) // 2
    assert centre.shape == (2, 4, size, size)
    torch.testing.assert_close(centre, full[..., lo:lo + size, lo:lo + size], rtol=0, atol=1e-5)
    if size < 62:  # the logits vary in space: a crop off by one pixel would not pass
        assert (full[..., lo + 1:lo + 1 + size, lo:lo + size] - centre).abs().max() > 1e-3
    with pytest.raises(ValueError, match="centre size"):
        model.centre_logits(x, 65)


def test_centre_logits_gradients_reach_the_encoder() -> None:
    torch.manual_seed(0)
    model = Tyrion.from_config(load_preset("smoke")["model"]).train()
    model.centre_logits(torch.rand(1, 1, 64, 64), 32).sum().backward()
    assert model.encoder.patch_embed.proj.weight.grad is not None
