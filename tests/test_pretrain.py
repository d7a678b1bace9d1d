"""OptSimMIM / OptTranslator (spec §5): masking, heads, losses, the training entry point, the transfer to fine-tuning,
the CLI and the pretraining figure. Tiny smoke-preset networks on synthetic data."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
import yaml
from lightning_fakes import counting, record_compiled_calls, setup_on_cpu

from ssl4sar.config import load_preset, merge
from ssl4sar.errors import DataError
from ssl4sar.models.convert import load_checkpoint, load_model
from ssl4sar.models.tyrion import Tyrion
from ssl4sar.pretrain import OptSimMIM, OptTranslator, pretrain
from ssl4sar.pretrain.common import method_settings
from ssl4sar.pretrain.optsimmim import patchify, token_mask

matplotlib.use("Agg")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cfg() -> dict:
    return load_preset("smoke")


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    """A fixed batch: random SAR, smooth optical bands in [0, 1] (64 px, smoke context size)."""
    g = torch.Generator().manual_seed(0)
    sar = torch.rand(4, 1, 64, 64, generator=g)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    optical = torch.stack([(0.3 + 0.4 * torch.sin(6 * xx + k) * yy).clamp(0, 1) for k in range(14)])
    return {"sar": sar, "optical": optical[None].repeat(4, 1, 1, 1)}


@pytest.fixture(scope="module")
def ssl4sar_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ssl4sar.data.synthetic import generate_ssl4sar

    return generate_ssl4sar(tmp_path_factory.mktemp("ssl4sar"), n_sar=4, n_glaciers=2, scene_size=(96, 140))


# ------------------------------------------------------------------------------------------------ the modules
def test_settings_come_from_the_preset(cfg: dict) -> None:
    sim = OptSimMIM.from_config(cfg)
    tr = OptTranslator.from_config(cfg)
    pre = cfg["pretrain"]
    assert sim.hparams["lr"] == pre["optsimmim"]["lr"] and tr.hparams["lr"] == pre["opttranslator"]["lr"]
    assert sim.mask_ratio == pre["optsimmim"]["mask_ratio"] and sim.token_size == cfg["model"]["patch_size"]
    assert sim.hparams["model_config"]["embed_dim"] == cfg["model"]["embed_dim"]
    opt = sim.configure_optimizers()
    sgd, sched = opt["optimizer"], opt["lr_scheduler"]
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["momentum"] == pre["momentum"] and sgd.defaults["weight_decay"] == pre["weight_decay"]
    assert isinstance(sched["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert sched["monitor"] == "val/loss" and sched["interval"] == "epoch"
    assert sched["scheduler"].factor == pre["plateau_factor"] and sched["scheduler"].patience == pre["plateau_patience"]
    # the segmentation head is frozen (not part of the task graph) and so is the zero mask token
    assert not any(p.requires_grad for p in sim.model.head.parameters())
    assert "mask_token" not in dict(sim.named_parameters()) and torch.count_nonzero(sim.mask_token) == 0
    no_lr = {**cfg, "pretrain": {**cfg["pretrain"], "optsimmim": {"mask_ratio": 0.3, "token_size": 4}}}
    with pytest.raises(ValueError, match=r"pretrain\.optsimmim: missing key\(s\) lr"):
        method_settings(no_lr, "optsimmim")


def test_head_sizes_match_the_reference_for_the_paper_model() -> None:
    """Spec §4.6: the pretraining heads add 26 915 (OptSimMIM) and 1 358 (OptTranslator) parameters."""
    paper = load_preset("paper")
    small = {**paper["model"], "depths": [1, 1, 1, 1]}   # heads only depend on embed_dim and patch_size
    for cls, expected in ((OptSimMIM, 26915), (OptTranslator, 1358)):
        module = cls(small, **{k: v for k, v in method_settings(paper, cls.method).items() if k != "lr"})
        n = sum(p.numel() for name, p in module.named_parameters() if not name.startswith("model."))
        assert n == expected


def test_masking_replaces_embedded_tokens_with_zeros(cfg: dict, batch: dict) -> None:
    module = OptSimMIM.from_config(cfg).eval()
    n = module.n_tokens
    idx = module.draw_mask(batch["sar"].shape[0], torch.Generator().manual_seed(3))
    n_keep = int(n * (1 - cfg["pretrain"]["optsimmim"]["mask_ratio"]))
    assert idx.shape == (4, n - n_keep) and not (idx == 0).any()
    seen = {}
    original = module.model.encode

    def spy(tokens: torch.Tensor) -> list[torch.Tensor]:
        seen["tokens"] = tokens.detach().clone()
        return original(tokens)

    module.model.encode = spy   # type: ignore[method-assign]
    with torch.no_grad():
        pred = module(batch["sar"], idx)
        embedded = module.model.embed(batch["sar"])
    b, h, w, e = embedded.shape
    got = seen["tokens"].reshape(b, h * w, e)
    masked = token_mask(idx, h * w)
    assert torch.count_nonzero(got[masked]) == 0
    assert torch.equal(got[~masked], embedded.reshape(b, h * w, e)[~masked])
    assert pred.shape == (4, n - n_keep, cfg["model"]["patch_size"] ** 2 * 14)


def test_optsimmim_loss_is_l1_on_masked_tokens_only(cfg: dict, batch: dict) -> None:
    module = OptSimMIM.from_config(cfg).eval()
    idx = module.draw_mask(4, torch.Generator().manual_seed(5))
    with torch.no_grad():
        loss = module.compute_loss(batch, idx_mask=idx)
        pred = module(batch["sar"], idx)
        target = patchify(batch["optical"], 4).gather(1, idx[..., None].expand(-1, -1, 4 * 4 * 14))
        assert torch.allclose(loss, (pred - target).abs().mean())
        # changing the optical image under the visible tokens does not change the loss
        visible = ~token_mask(idx, module.n_tokens)
        grid = visible.reshape(4, 16, 16).repeat_interleave(4, 1).repeat_interleave(4, 2)
        other = dict(batch, optical=torch.where(grid[:, None], 1.0 - batch["optical"], batch["optical"]))
        assert torch.allclose(module.compute_loss(other, idx_mask=idx), loss)


@pytest.mark.parametrize("cls, min_gain", [(OptSimMIM, 0.01), (OptTranslator, 0.2)])
def test_losses_finite_and_decreasing_on_a_fixed_batch(cfg: dict, batch: dict, cls: type, min_gain: float) -> None:
    torch.manual_seed(0)
    module = cls.from_config(cfg)
    opt = module.configure_optimizers()["optimizer"]

    def evaluate() -> float:
        module.eval()
        with torch.no_grad():
            return float(module.compute_loss(batch, generator=torch.Generator().manual_seed(1)))

    before = evaluate()
    losses = []
    for _ in range(15):
        module.train()
        opt.zero_grad()
        loss = module.compute_loss(batch)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    after = evaluate()
    assert all(np.isfinite(losses)) and np.isfinite(before) and np.isfinite(after)
    assert after < (1.0 - min_gain) * before
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_bad_batches_are_rejected(cfg: dict, batch: dict) -> None:
    module = OptTranslator.from_config(cfg)
    with pytest.raises(ValueError, match="optical"):
        module.compute_loss({"sar": batch["sar"], "optical": batch["optical"][:, :3]})
    with pytest.raises(ValueError, match="token_size"):
        OptSimMIM(cfg["model"], token_size=8)


def test_reconstruction_figure(cfg: dict, batch: dict) -> None:
    from ssl4sar.viz import plot_pretrain_batch

    module = OptSimMIM.from_config(cfg).eval()
    rec = module.reconstruct(batch["sar"], generator=torch.Generator().manual_seed(2))
    mask = rec["mask"]
    assert mask.shape == (4, 64, 64) and abs(float(mask.float().mean()) - 0.3) < 0.02
    assert torch.count_nonzero(rec["prediction"][:, :, ~mask[0]][0]) == 0   # nothing predicted on visible tokens
    fig = plot_pretrain_batch(batch["sar"], batch["optical"], rec["prediction"], mask, index=0)
    masked_panel = np.asarray(fig.axes[1].images[0].get_array())
    m = mask[0].numpy()
    assert np.all(masked_panel[m] == 0)
    assert np.allclose(masked_panel[~m], batch["sar"][0, 0].numpy()[~m])
    titles = [a.get_title() for a in fig.axes]
    assert "true RGB (B4/B3/B2)" in titles and "B11 predicted" in titles and "SCL true" in titles
    fig2 = plot_pretrain_batch(batch["sar"], batch["optical"], OptTranslator.from_config(cfg).reconstruct(
        batch["sar"])["prediction"], None, index=1)
    assert "input (no masking)" in [a.get_title() for a in fig2.axes]


# ------------------------------------------------------------------------------------------------ training runs
@pytest.mark.slow
def test_pretrain_checkpoint_initialises_finetuning(cfg: dict, ssl4sar_data: Path, tmp_path: Path) -> None:
    from ssl4sar.finetune import SegmentationModule, initialise_model

    small = merge(cfg, {"pretrain.samples_per_epoch": 8})   # two optimiser steps
    for method in ("optsimmim", "opttranslator"):
        out = tmp_path / method
        result = pretrain(method, small, ssl4sar_data, out, max_epochs=1, progress=False, init="scratch",
                          trainer_kwargs={"num_sanity_val_steps": 0})
        assert result.best_checkpoint is not None and result.best_checkpoint.is_file()
        assert result.last_checkpoint is not None and result.best_val_loss is not None
        assert np.isfinite(result.best_val_loss) and result.epochs == 1
        state = torch.load(result.best_checkpoint, map_location="cpu", weights_only=False)["state_dict"]
        heads = {k for k in state if not k.startswith("model.")}
        assert heads and all(k.split(".")[0] in ("mask_token", "last_model_decoder_layer",
                                                 "patch_embed_after_decoder", "token_head") for k in heads)
        network = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
        # load_model: every encoder and decoder weight, the heads dropped
        loaded = load_model(result.best_checkpoint)
        assert set(loaded.state_dict()) == set(network)
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in network.items())
        # fine-tuning's initialisation from the checkpoint (what `ssl4sar finetune --init CKPT` does)
        fresh = Tyrion.from_config(cfg["model"])
        assert not torch.equal(fresh.decoder[0].block.conv1.weight, network["decoder.0.block.conv1.weight"])
        desc = initialise_model(fresh, result.best_checkpoint)
        assert desc.startswith("checkpoint:")
        assert all(torch.equal(fresh.state_dict()[k], v) for k, v in network.items())
        seg = SegmentationModule.from_config(cfg)
        seg.initialise(str(result.last_checkpoint))
        assert torch.isfinite(seg(torch.rand(1, 1, 64, 64))).all()
        # the export in the project format holds the best network too
        exported, meta = load_checkpoint(result.export)
        assert meta["method"] == method
        assert all(torch.equal(exported.state_dict()[k], v) for k, v in network.items())


@pytest.mark.slow
def test_cli_pretrain_and_resume(ssl4sar_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ssl4sar.cli import main
    from ssl4sar.training import read_metrics_csv

    out = tmp_path / "run"
    args = ["pretrain", "--method", "optsimmim", "--preset", "smoke", "--ssl4sar", str(ssl4sar_data), "--out",
            str(out), "--init", "scratch", "--no-progress"]
    assert main([*args, "--max-epochs", "1"]) == 0
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "pretrained.pt").is_file()
    first = read_metrics_csv(out / "logs" / "metrics.csv").dropna(subset=["val/loss"])
    assert first["epoch"].astype(int).tolist() == [0]
    steps_per_epoch = int(first["step"].iloc[0]) + 1
    assert main([*args, "--max-epochs", "2"]) == 0   # resumes from last.ckpt for the second epoch only
    run = yaml.safe_load((out / "config.yaml").read_text())["run"]
    assert run["resumed_from"] == str(out / "checkpoints" / "last.ckpt")
    # the resumed run appends to metrics.csv (issue 17: Lightning's CSV logger used to start it afresh)
    val = read_metrics_csv(out / "logs" / "metrics.csv").dropna(subset=["val/loss"])
    assert val["epoch"].astype(int).tolist() == [0, 1]
    assert int(val["step"].iloc[1]) == 2 * steps_per_epoch - 1
    assert np.isfinite(val["val/loss"]).all()
    # a finished run re-run with the same budget says so (the runner fine-tuning and pretraining share)
    with caplog.at_level(logging.WARNING, logger="ssl4sar"):
        assert main([*args, "--max-epochs", "2"]) == 0
    assert "nothing left to train" in caplog.text
    # bad input: a one-line error and exit status 1
    assert main(["pretrain", "--method", "opttranslator", "--preset", "smoke", "--ssl4sar",
                 str(tmp_path / "missing"), "--out", str(tmp_path / "x"), "--no-progress"]) == 1


def test_pretrain_rejects_unknown_method_and_missing_data(cfg: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown pretraining method"):
        pretrain("simclr", cfg, tmp_path, tmp_path / "out")
    with pytest.raises(DataError, match="data folder not found"):
        pretrain("optsimmim", cfg, tmp_path / "nope", tmp_path / "out")


def test_parser_accepts_documented_arguments() -> None:
    from ssl4sar.commands.pretrain import configure

    parser = argparse.ArgumentParser()
    configure(parser)
    ns = parser.parse_args(["--method", "opttranslator", "--preset", "demo", "--ssl4sar", "d", "--out", "o",
                            "--init", "imagenet", "--max-epochs", "3", "--seed", "7", "--devices", "2"])
    assert (ns.method, ns.preset, ns.data, ns.out, ns.init, ns.max_epochs, ns.seed, ns.devices) == (
        "opttranslator", "demo", Path("d"), Path("o"), "imagenet", 3, 7, "2")


def test_mean_predictor_baseline(cfg: dict, batch: dict) -> None:
    from ssl4sar.pretrain.common import mean_predictor_val_loss, optical_band_means

    level = torch.linspace(0.1, 0.8, 14)
    const = {"sar": batch["sar"], "optical": level[None, :, None, None].expand(4, 14, 64, 64).clone()}
    dataset = [{"optical": const["optical"][i]} for i in range(4)]
    assert torch.allclose(optical_band_means(dataset), level)
    for cls in (OptSimMIM, OptTranslator):
        module = cls.from_config(cfg)
        assert float(module.baseline_loss(const, level)) < 1e-6
        assert abs(float(module.baseline_loss(const, level + 0.05)) - 0.05) < 1e-6
        # the smooth batch: the masked baseline is the dense one restricted to the masked tokens
        means = optical_band_means([{"optical": batch["optical"][i]} for i in range(4)])
        loss = mean_predictor_val_loss(module, [batch, const], means)
        dense = (batch["optical"] - means[None, :, None, None]).abs().mean()
        const_loss = float(module.baseline_loss(const, means))
        if cls is OptTranslator:
            assert abs(loss - (float(dense) + const_loss) / 2) < 1e-6
        else:
            assert abs(loss - (float(dense) + const_loss) / 2) < 0.02


# ----------------------------------------------------------------------------------------------- torch.compile
@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize("cls", [OptSimMIM, OptTranslator])
def test_pretrain_compile_runs_the_training_forward_compiled_and_validation_eager(
        cfg: dict, batch: dict, cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    """``pretrain.compile``: the training step's forward goes through CompiledCall (``aot_eager`` here: it traces
    like inductor without minutes of C++ code generation on this CPU) with the eager loss and gradients; validation
    stays eager; the state dict has no second copy of the weights; the preset key is typed."""
    import ssl4sar.pretrain.module as module_file

    made = record_compiled_calls(monkeypatch, module_file)
    calls: list[int] = []
    assert load_preset("paper")["pretrain"]["compile"] is False
    with pytest.raises(ValueError, match="pretrain.compile: expected true or false"):
        load_preset("smoke", overrides={"pretrain": {"compile": "yes"}})
    on = merge(cfg, {"pretrain": {"compile": True}})
    torch.manual_seed(0)
    eager, compiled = cls.from_config(cfg), cls.from_config(on)
    assert compiled.hparams["compile"] is True and eager.hparams["compile"] is False
    compiled.load_state_dict(eager.state_dict())
    setup_on_cpu(eager, compiled)
    assert len(made) == 1
    monkeypatch.setattr(made[0], "_compiled", counting(made[0]._compiled, calls))
    losses = []
    for m in (eager, compiled):
        torch.manual_seed(1)   # the same masks and drop-path draws in both
        losses.append(m.training_step(batch, 0))
    assert len(calls) == 1 and made[0].failed is None
    assert torch.allclose(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    losses[1].backward()
    assert all(p.grad is not None for p in compiled.model.encoder.parameters() if p.requires_grad)
    compiled.eval()
    with torch.no_grad():
        compiled.validation_step(batch, 0)
    assert len(calls) == 1   # validation ran eagerly
    assert set(compiled.state_dict()) == set(eager.state_dict())



@pytest.mark.parametrize("method", [OptSimMIM, OptTranslator])
def test_channels_last_is_set_before_lightning_wraps_the_module(cfg: dict, method: type) -> None:
    """Lightning calls ``setup`` before the strategy wraps the module in DDP and ``on_fit_start`` after it; a
    layout changed after the wrap no longer matches DDP's gradient buckets (torch warns, and copies every gradient
    on every step). Fine-tuning switches in ``setup``; pretraining did so in ``on_fit_start``."""
    import types

    module = method(cfg["model"], lr=0.1, **({"token_size": cfg["model"]["patch_size"]} if method is OptSimMIM else {}))
    module.trainer = types.SimpleNamespace(strategy=types.SimpleNamespace(root_device=torch.device("cuda")))
    module.setup("fit")
    convs = [m.weight for m in module.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[-1] > 1]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert module._channels_last
