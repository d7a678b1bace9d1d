"""Tests of the shared training engine (ssl4sar.training): batch arithmetic, devices, seeding, checkpoints."""

from __future__ import annotations

import os
import types
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from fake_gpu import pretend_cuda
from torch.utils.data import DataLoader, TensorDataset

from ssl4sar.config import load_preset
from ssl4sar.training import (
    LAST_CHECKPOINT,
    StepSeed,
    TrainingPlan,
    accumulation_steps,
    build_loggers,
    build_trainer,
    checkpoint_callbacks,
    find_resume_checkpoint,
    metrics_csv_path,
    plan_training,
    read_metrics_csv,
    resolve_devices,
    resolve_num_nodes,
    single_device_hardware,
)

_LAUNCH_ENV = ("LOCAL_WORLD_SIZE", "WORLD_SIZE", "SLURM_NNODES")


@pytest.fixture(autouse=True)
def _clean_launch_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)


# ----------------------------------------------------------------------------------------------- batch arithmetic
@pytest.mark.parametrize(("global_bs", "per_device", "devices", "nodes", "expected"), [
    (128, 16, 4, 1, 2),   # the paper: 16 per GPU × 4 GPUs × 2 accumulation steps
    (128, 16, 1, 1, 8),
    (128, 16, 8, 1, 1),
    (128, 16, 2, 2, 2),
    (32, 4, 4, 1, 2),     # the paper's pretraining
    (4, 4, 1, 1, 1),
])
def test_accumulation_steps(global_bs: int, per_device: int, devices: int, nodes: int, expected: int) -> None:
    steps = accumulation_steps(global_bs, per_device, devices, nodes)
    assert steps == expected
    assert steps * per_device * devices * nodes == global_bs


@pytest.mark.parametrize(("global_bs", "per_device", "devices", "nodes"), [
    (128, 16, 3, 1),   # 48 does not divide 128
    (8, 16, 1, 1),     # one step's batch larger than the global batch
    (128, 16, 16, 1),  # 256 > 128
    (128, 0, 1, 1),
])
def test_accumulation_steps_rejects_non_divisible(global_bs: int, per_device: int, devices: int, nodes: int) -> None:
    with pytest.raises(ValueError, match=f"global batch {global_bs}|must be positive"):
        accumulation_steps(global_bs, per_device, devices, nodes)


def test_plan_training_paper_preset() -> None:
    ft = load_preset("paper")["finetune"]
    plan = plan_training(ft, devices=4, num_nodes=1, accelerator="cpu")
    assert (plan.accumulate_grad_batches, plan.strategy, plan.world_size) == (2, "ddp", 4)
    single = plan_training(ft, devices=1, num_nodes=1, accelerator="cpu")
    assert (single.accumulate_grad_batches, single.strategy) == (8, "auto")
    two_nodes = plan_training(ft, devices=2, num_nodes=2, accelerator="cpu")
    assert two_nodes.accumulate_grad_batches == 2 and two_nodes.trainer_kwargs()["num_nodes"] == 2
    # 40 000 samples per epoch, 16 per step and device, 4 devices, 2 accumulation steps → 312 optimiser steps
    assert plan.optimizer_steps_per_epoch(40000) == 312
    with pytest.raises(ValueError, match="global batch 128"):
        plan_training(ft, devices=3, num_nodes=1, accelerator="cpu")


def test_plan_training_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    ft = load_preset("smoke")["finetune"]
    assert plan_training(ft, devices=1, accelerator="cpu").precision == "32-true"
    # bf16 autocast on a CPU only where it computes bf16 natively (AVX512-BF16 / AMX); elsewhere fp32
    import ssl4sar.models.fast as fast

    monkeypatch.setattr(fast, "cpu_has_native_bf16", lambda: False)
    assert plan_training(ft, devices=1, precision="bf16-mixed", accelerator="cpu").precision == "32-true"
    monkeypatch.setattr(fast, "cpu_has_native_bf16", lambda: True)
    assert plan_training(ft, devices=1, precision="bf16-mixed", accelerator="cpu").precision == "bf16-mixed"
    with pytest.raises(ValueError, match="precision"):
        plan_training(ft, devices=1, precision="16-mixed", accelerator="cpu")
    with pytest.raises(ValueError, match="batch_size_per_device"):
        plan_training({"global_batch_size": 4}, devices=1, accelerator="cpu")


@pytest.mark.parametrize(("capability", "name", "native"),
                         [((7, 5), "Tesla T4", False), ((8, 0), "NVIDIA A100-SXM4-40GB", True)])
def test_plan_training_precision_on_a_gpu(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                          capability: tuple[int, int], name: str, native: bool) -> None:
    # the gpu preset's bf16-mixed on a GPU without native bf16 (a T4 on Colab's free tier) would run emulated
    # bf16 (slower than float32: no tensor cores, no cuDNN bf16 convolutions); such a run uses 32-true and says so
    pretend_cuda(monkeypatch, capability, name, count=2)
    ft = load_preset("gpu")["finetune"]
    assert ft["precision"] == "bf16-mixed"
    with caplog.at_level("WARNING", logger="ssl4sar.training"):
        for accelerator in ("auto", "cuda"):
            plan = plan_training(ft, devices=1, accelerator=accelerator)
            assert plan.precision == ("bf16-mixed" if native else "32-true")
            two = plan_training({**ft, "batch_size_per_device": 8}, devices="auto", accelerator=accelerator)
            assert two.devices == 2 and two.precision == plan.precision
    if native:
        assert not caplog.records
    else:
        assert "Tesla T4" in caplog.text and "7.5" in caplog.text and "32-true" in caplog.text


def test_plan_training_checks_bf16_on_the_gpus_the_run_names(monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    # a machine that mixes GPU generations: GPU 0 a T4 (emulated bf16), GPU 1 an A100 (native bf16)
    pretend_cuda(monkeypatch, (8, 0), "NVIDIA A100-SXM4-40GB", count=2)
    kinds = {0: ((7, 5), "Tesla T4"), 1: ((8, 0), "NVIDIA A100-SXM4-40GB")}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: kinds[int(device or 0)][0])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: kinds[int(device or 0)][1])
    ft = load_preset("gpu")["finetune"]
    on_a100 = plan_training(ft, devices=[1], accelerator="gpu")
    assert on_a100.precision == "bf16-mixed" and on_a100.devices == 1 and on_a100.gpu_indices == (1,)
    assert on_a100.trainer_kwargs()["devices"] == [1] and on_a100.strategy == "auto"
    with caplog.at_level("WARNING", logger="ssl4sar.training"):
        assert plan_training(ft, devices=[0], accelerator="gpu").precision == "32-true"
        assert "Tesla T4" in caplog.text and "7.5" in caplog.text
        caplog.clear()
        both = plan_training({**ft, "batch_size_per_device": 8}, devices=[1, 0], accelerator="cuda")
        assert both.precision == "32-true" and "Tesla T4" in caplog.text   # every device of the run must be native
    assert both.devices == 2 and both.strategy == "ddp" and both.trainer_kwargs()["devices"] == [1, 0]
    # a count keeps meaning the first GPUs, as Lightning reads it
    assert plan_training(ft, devices=1, accelerator="gpu").gpu_indices is None
    assert plan_training(ft, devices=1, accelerator="gpu").trainer_kwargs()["devices"] == 1
    for bad, message in (([2], "GPU 2.*2 CUDA device"), ([], "at least one"), ([1, 1], "twice"),
                         ([-1], "GPU -1"), (["x"], "integer")):
        with pytest.raises(ValueError, match=message):
            plan_training(ft, devices=bad, accelerator="gpu")
    with pytest.raises(ValueError, match="GPU indices.*cpu"):
        plan_training(ft, devices=[0], accelerator="cpu")


def test_out_of_memory_advice_keeps_the_global_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    def plan(batch: int, global_batch: int, devices: int = 1, precision: str = "32-true") -> TrainingPlan:
        return TrainingPlan(accelerator="cuda", devices=devices, num_nodes=1, strategy="auto", precision=precision,
                            accumulate_grad_batches=global_batch // (batch * devices), batch_size_per_device=batch,
                            global_batch_size=global_batch)

    # the largest smaller batch that divides each process's share of the global batch
    assert plan(16, 16).smaller_batch_per_device() == 8
    assert plan(16, 128, devices=4).smaller_batch_per_device() == 8    # 32 per process
    assert plan(12, 36).smaller_batch_per_device() == 9
    assert plan(5, 5).smaller_batch_per_device() == 1
    assert plan(1, 8).smaller_batch_per_device() is None
    pretend_cuda(monkeypatch, (7, 5), "Tesla T4", memory_gib=14.58)
    text = plan(16, 16).out_of_memory_message("fine-tuning", "finetune", "runs/ft")
    assert text.startswith("fine-tuning ran out of memory on Tesla T4 (GPU 0, 14.6 GiB) with 16 samples per device "
                           "(32-true): lower the batch per device, e.g. --set finetune.batch_size_per_device=8: the "
                           "global batch stays 16 (gradient accumulation over 2 steps)")
    assert text.endswith("The checkpoints written so far stay in runs/ft")
    last = plan(1, 8).out_of_memory_message("optsimmim pretraining", "pretrain", "runs/pt")
    assert "one sample per device does not fit" in last and "bf16-mixed on a GPU that computes bf16 natively" in last


def test_resolve_devices_and_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_devices("auto", accelerator="cpu") == 1
    assert resolve_devices("3") == 3 and resolve_devices(2) == 2
    for bad in ("two", 0, -1):
        with pytest.raises(ValueError, match="devices"):
            resolve_devices(bad)
    assert resolve_num_nodes() == 1 and resolve_num_nodes(3) == 3
    with pytest.raises(ValueError):
        resolve_num_nodes(0)
    monkeypatch.setenv("SLURM_NNODES", "5")
    assert resolve_num_nodes() == 5
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")   # torchrun --nproc-per-node 4 --nnodes 2
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert resolve_devices("auto", accelerator="cpu") == 4
    assert resolve_num_nodes() == 2


# ----------------------------------------------------------------------------------------------- seeding
def _draws(cb: StepSeed, epoch: int, batch_idx: int, rank: int) -> torch.Tensor:
    trainer = types.SimpleNamespace(current_epoch=epoch, global_rank=rank)
    torch.rand(7)  # whatever ran before must not matter
    cb.on_train_batch_start(trainer, None, None, batch_idx)  # type: ignore[arg-type]
    return torch.rand(5)


def test_step_seed_depends_only_on_seed_epoch_batch_rank() -> None:
    cb = StepSeed(3)
    a = _draws(cb, 1, 2, 0)
    torch.randn(100)
    assert torch.equal(a, _draws(cb, 1, 2, 0))
    others = [_draws(cb, 2, 2, 0), _draws(cb, 1, 3, 0), _draws(cb, 1, 2, 1), _draws(StepSeed(4), 1, 2, 0)]
    assert all(not torch.equal(a, o) for o in others)


# ----------------------------------------------------------------------------------------------- checkpoints, logs
def test_checkpoint_callbacks(tmp_path: Path) -> None:
    cbs = checkpoint_callbacks(tmp_path, [("val/mde", "min"), ("val/iou_patch", "max")])
    assert [(c.monitor, c.mode) for c in cbs[:2]] == [("val/mde", "min"), ("val/iou_patch", "max")]
    assert all(Path(c.dirpath) == tmp_path / "checkpoints" for c in cbs)
    assert not any(c.save_last for c in cbs)
    last = cbs[-1]
    assert last.monitor is None and last.filename == "last"
    assert checkpoint_callbacks(tmp_path, [], save_last=False) == []
    with pytest.raises(ValueError, match="mode"):
        checkpoint_callbacks(tmp_path, [("val/mde", "lowest")])


def test_find_resume_checkpoint(tmp_path: Path) -> None:
    assert find_resume_checkpoint(tmp_path) is None
    last = tmp_path / "checkpoints" / LAST_CHECKPOINT
    last.parent.mkdir()
    last.write_bytes(b"x")
    os.utime(last, (1000, 1000))
    assert find_resume_checkpoint(tmp_path) == last
    hpc = tmp_path / "hpc_ckpt_2.ckpt"     # SLURM requeue checkpoint, newer
    hpc.write_bytes(b"x")
    os.utime(hpc, (2000, 2000))
    assert find_resume_checkpoint(tmp_path) == hpc
    os.utime(last, (3000, 3000))
    assert find_resume_checkpoint(tmp_path) == last


def test_build_loggers(tmp_path: Path) -> None:
    import importlib.util

    from lightning.pytorch.loggers import CSVLogger

    loggers = build_loggers(tmp_path, tensorboard=False)
    assert len(loggers) == 1 and isinstance(loggers[0], CSVLogger)
    have_tb = importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")
    if have_tb:
        assert len(build_loggers(tmp_path)) == 2
    else:
        assert len(build_loggers(tmp_path)) == 1
        with pytest.raises(ValueError, match="TensorBoard"):
            build_loggers(tmp_path, tensorboard=True)


def test_read_metrics_csv_merges_rows(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,a,b\n0,3,1.5,\n0,3,,2.5\n1,7,0.5,\n")
    df = read_metrics_csv(path)
    assert df[["epoch", "step"]].values.tolist() == [[0, 3], [1, 7]]
    assert df.loc[0, "a"] == 1.5 and df.loc[0, "b"] == 2.5


class _Toy(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)
        self.seen = 0

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.seen += 1
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.lin(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_build_trainer_accumulates_to_the_global_batch(tmp_path: Path) -> None:
    plan = plan_training({"global_batch_size": 8, "batch_size_per_device": 2}, devices=1, accelerator="cpu")
    assert plan.accumulate_grad_batches == 4
    trainer = build_trainer(plan, tmp_path, callbacks=checkpoint_callbacks(tmp_path, []), max_epochs=1, seed=0,
                            progress=False, log_every_n_steps=1)
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(16, 3, generator=g), torch.randn(16, 1, generator=g))
    module = _Toy()
    trainer.fit(module, DataLoader(data, batch_size=2))
    assert module.seen == 8                # 16 samples / 2 per batch
    assert trainer.global_step == 2        # one optimiser step per 4 micro-batches = 8 samples
    assert (tmp_path / "checkpoints" / LAST_CHECKPOINT).is_file()
    assert metrics_csv_path(tmp_path).is_file()
    assert any(isinstance(cb, StepSeed) for cb in trainer.callbacks)


@pytest.mark.parametrize(("accelerator", "extra", "benchmark"), [
    ("gpu", {}, True),                        # fixed shapes: cuDNN's autotuning, as the benchmark measures
    ("gpu", {"deterministic": True}, None),   # autotuning would override cuDNN's deterministic algorithms
    ("gpu", {"benchmark": False}, False),     # the caller's choice wins
    ("cpu", {}, None),                        # no cuDNN: Lightning's default
])
def test_build_trainer_turns_on_cudnn_autotuning_on_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         accelerator: str, extra: dict, benchmark: bool | None
                                                         ) -> None:
    seen: dict = {}
    monkeypatch.setattr(pl, "Trainer", lambda **kwargs: seen.update(kwargs))  # no GPU here to build a real one
    plan = TrainingPlan(accelerator, devices=1, num_nodes=1, strategy="auto", precision="bf16-mixed",
                        accumulate_grad_batches=1, batch_size_per_device=2, global_batch_size=2)
    build_trainer(plan, tmp_path, progress=False, tensorboard=False, **extra)
    assert seen["accelerator"] == accelerator
    assert seen.get("benchmark") is benchmark


def test_single_device_hardware_names_one_device():
    assert single_device_hardware("cpu") == {"accelerator": "cpu", "devices": 1}
    assert single_device_hardware("auto") == {"accelerator": "auto", "devices": 1}
    assert single_device_hardware("cuda") == {"accelerator": "gpu", "devices": 1}
    # Lightning's convention: a list of devices names the GPUs themselves
    assert single_device_hardware("cuda:3") == {"accelerator": "gpu", "devices": [3]}
    for bad in ("cuda:x", "tpu", ""):
        with pytest.raises(ValueError, match="device"):
            single_device_hardware(bad)
