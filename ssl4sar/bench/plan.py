"""The benchmarks of a run, one small dataclass each, and :func:`plan_benchmarks`, which lists them for a device and
mode.

Every benchmark has a ``name`` (one of :data:`BENCHMARKS`), a ``variant`` (its key is ``name/variant``, what
``--only`` selects) and ``run()``, which returns one raw result dict per report row. The model benchmarks compare
execution paths (:mod:`ssl4sar.bench.paths`) in alternating rounds: the first path is the official code's
*reference path* and every row carries its ``speedup`` over it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from ssl4sar.bench.measure import (
    COMPILE_WARMUP_STEPS,
    PeakMemory,
    allocated_mb,
    alternate,
    discount_other_paths,
    warmup_steps,
)
from ssl4sar.bench.paths import (
    REFERENCE,
    ExecPath,
    fast_path,
    fast_training_path,
    path_settings,
    path_threads,
    runner_for,
)
from ssl4sar.config import check_seed, paper_preset
from ssl4sar.errors import SettingError

__all__ = [
    "BENCHMARKS",
    "Accuracy",
    "Benchmark",
    "DataSampler",
    "FinetuneStep",
    "MatmulPeak",
    "PostprocessMDE",
    "PretrainStep",
    "SlidingWindow",
    "check_only",
    "plan_benchmarks",
    "selected",
]

log = logging.getLogger(__name__)

BENCHMARKS = ("matmul_peak", "finetune_step", "pretrain_step", "sliding_window", "postprocess_mde", "data_sampler",
              "pretrain_sampler", "accuracy")


@dataclass
class Benchmark:
    """Base of the benchmarks: ``variant`` label and the ``device`` it runs on."""

    name: ClassVar[str] = ""
    variant: str
    device: str

    @property
    def key(self) -> str:
        return f"{self.name}/{self.variant}"

    def check(self) -> None:
        """Raise :class:`~ssl4sar.errors.DataError` for inputs that ``run`` would only find missing after the
        benchmarks before it (called for every chosen benchmark before the first runs)."""

    def run(self) -> list[dict[str, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class MatmulPeak(Benchmark):
    """Dense ``n × n`` matmul FLOP/s in ``dtype`` (:func:`ssl4sar.bench.environment.measure_matmul_peak`)."""

    name: ClassVar[str] = "matmul_peak"
    dtype: torch.dtype = torch.float32
    n: int = 2048
    iters: int = 3

    def run(self) -> list[dict[str, Any]]:
        from ssl4sar.bench.environment import measure_matmul_peak

        return [measure_matmul_peak(self.device, self.dtype, self.n, self.iters)]


def _compare_steps(build: Callable[[ExecPath], Any], paths: Sequence[ExecPath], rounds: int, warmup: int,
                   device: str) -> list[dict[str, Any]]:
    """Build and warm up each path's case in turn (``build(path)``), measure its peak memory on one step, then time
    all in alternating rounds.

    Every case stays allocated for the rounds, so on a GPU a path's peak would include the models, gradients and
    optimiser state of the paths built before it: that memory (allocated before its case was built) is taken off
    its peak and reported as ``memory_other_paths_mb``. (On a CPU the peak resident set of the process is not
    separable that way; its rows show the increase during the step.)

    A path that runs out of memory while it is built or warmed up is dropped (its row says ``failed``, without
    numbers) and the others are measured: at batch 64 the reference path needs 106 GB, more than an H100 holds,
    while the fast paths fit. ``speedup`` needs the first path; without it, it is ``None``.

    On CUDA a path without cuDNN autotuning (the reference path, ``fast-no-cudnn-autotuning``) runs its steps in a
    thread of its own (:func:`ssl4sar.bench.paths.runner_for`)."""
    from ssl4sar.bench.training import case_result

    dev = torch.device(device)
    cases, steps, warm, mems, before, failed = {}, {}, {}, {}, {}, {}
    with contextlib.ExitStack() as stack:
        for p in paths:
            before[p.name] = allocated_mb(dev)
            try:
                with path_threads(p.threads):  # a case records torch's thread count: the one its path runs with
                    case = cases[p.name] = build(p)

                def path_step(case: Any = case, p: ExecPath = p) -> None:
                    with path_settings(p, dev):
                        case.step()

                step = runner_for(p, dev, stack)(path_step)
                warm[p.name] = warmup_steps(step, max(int(warmup), COMPILE_WARMUP_STEPS if p.compile else 0), dev)
                mems[p.name] = PeakMemory(dev)
                with mems[p.name]:
                    step()
            except torch.cuda.OutOfMemoryError as exc:
                failed[p.name] = f"out of memory: {str(exc).splitlines()[0][:200]}"
                log.error("%s: path %s dropped, %s", device, p.name, failed[p.name])
                cases.pop(p.name, None)
                case = step = path_step = None  # noqa: F841 - the last references to the path's tensors
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            steps[p.name] = step
        times = alternate(steps, rounds, dev)
    rows = []
    for p in paths:
        if p.name in failed:
            rows.append({"path": p.name, "failed": failed[p.name], "device": str(dev),
                         **{f"path_{k}": v for k, v in p.describe(dev).items()}})
            continue
        row = case_result(cases[p.name], times[p.name], warm[p.name], mems[p.name])
        row.update(path=p.name, round_s=times[p.name], **{f"path_{k}": v for k, v in p.describe(dev).items()})
        discount_other_paths(row, before[p.name])
        # best round: the least disturbed by other load on the machine
        row["throughput_best"] = row["batch_size"] / row["step_s_min"]
        rows.append(row)
    base = rows[0].get("throughput_best")
    for row in rows:
        if "failed" not in row:
            row["speedup"] = row["throughput_best"] / base if base else None
    return rows


@dataclass
class _StepComparison(Benchmark):
    """Training steps of the preset's network on every path, timed in alternating rounds (:func:`_compare_steps`);
    every path trains on the same ``batch`` (a path's ``batch`` is an inference setting). Subclasses say how one
    path's step is prepared (:meth:`case`)."""

    model_config: Mapping[str, Any] = field(default_factory=dict)
    paths: Sequence[ExecPath] = ()
    batch: int = 2
    rounds: int = 3
    warmup: int = 1
    seed: int = 0

    def case(self, path: ExecPath) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self) -> list[dict[str, Any]]:
        return _compare_steps(self.case, self.paths, self.rounds, self.warmup, self.device)


@dataclass
class FinetuneStep(_StepComparison):
    """Fine-tuning steps on every path (:func:`ssl4sar.bench.training.finetune_case`)."""

    name: ClassVar[str] = "finetune_step"

    def case(self, path: ExecPath) -> Any:
        from ssl4sar.bench.training import StepSettings, finetune_case

        return finetune_case(self.model_config, StepSettings.on_path(path, self.device, self.batch, self.seed))


@dataclass
class PretrainStep(_StepComparison):
    """OptSimMIM or OptTranslator steps on every path (:func:`ssl4sar.bench.training.pretrain_case`)."""

    name: ClassVar[str] = "pretrain_step"
    rounds: int = 2
    method: str = "optsimmim"
    method_settings: Mapping[str, Any] | None = None

    def case(self, path: ExecPath) -> Any:
        from ssl4sar.bench.training import StepSettings, pretrain_case

        settings = StepSettings.on_path(path, self.device, self.batch, self.seed)
        return pretrain_case(self.method, self.model_config, settings, method_settings=self.method_settings)


@dataclass
class SlidingWindow(Benchmark):
    """Sliding-window inference of a random scene on every path
    (:func:`ssl4sar.bench.windows.compare_sliding_window`)."""

    name: ClassVar[str] = "sliding_window"
    model_config: Mapping[str, Any] = field(default_factory=dict)
    paths: Sequence[ExecPath] = ()
    windows_per_axis: int = 3
    stride: int | None = None
    sigma: float | None = None
    batch: int = 2
    rounds: int = 3
    seed: int = 0

    def run(self) -> list[dict[str, Any]]:
        from ssl4sar.bench.windows import compare_sliding_window

        return compare_sliding_window(self.model_config, self.paths, device=self.device,
                                      windows_per_axis=self.windows_per_axis, stride=self.stride, sigma=self.sigma,
                                      batch_size=self.batch, rounds=self.rounds, seed=self.seed)


@dataclass
class PostprocessMDE(Benchmark):
    """Post-processing + MDE of one synthetic ``size²`` scene (:mod:`ssl4sar.bench.postprocess`)."""

    name: ClassVar[str] = "postprocess_mde"
    size: int = 5000
    repeats: int = 1
    seed: int = 0

    def run(self) -> list[dict[str, Any]]:
        from ssl4sar.bench.postprocess import benchmark_postprocess_mde

        return [benchmark_postprocess_mde(size=self.size, seed=self.seed, repeats=self.repeats, memory=True)]


@dataclass
class DataSampler(Benchmark):
    """The fine-tuning sampler on one worker (:mod:`ssl4sar.bench.sampler`)."""

    name: ClassVar[str] = "data_sampler"
    data_config: Mapping[str, Any] = field(default_factory=dict)
    n_samples: int = 16
    warmup: int = 1
    data_dir: str | Path | None = None
    scene_size: tuple[int, int] = (900, 1200)
    all_augmentations: bool = False
    seed: int = 0

    def run(self) -> list[dict[str, Any]]:
        from ssl4sar.bench.sampler import benchmark_data_sampler

        return [benchmark_data_sampler(self.data_config, n_samples=self.n_samples, warmup=self.warmup,
                                       data_dir=self.data_dir, scene_size=self.scene_size,
                                       all_augmentations=self.all_augmentations, seed=self.seed)]


@dataclass
class PretrainSampler(Benchmark):
    """The pretraining sampler on one worker, optical images preloaded vs read on demand
    (:func:`ssl4sar.bench.sampler.benchmark_pretrain_sampler`)."""

    name: ClassVar[str] = "pretrain_sampler"
    pretrain_config: Mapping[str, Any] = field(default_factory=dict)
    n_samples: int = 24
    rounds: int = 3
    n_glaciers: int = 8
    scene_size: tuple[int, int] = (1200, 1600)
    seed: int = 0

    def run(self) -> list[dict[str, Any]]:
        from ssl4sar.bench.sampler import benchmark_pretrain_sampler

        return benchmark_pretrain_sampler(self.pretrain_config, n_samples=self.n_samples, rounds=self.rounds,
                                          n_glaciers=self.n_glaciers, scene_size=self.scene_size, seed=self.seed)


@dataclass
class Accuracy(Benchmark):
    """Fast path vs reference path of a trained checkpoint on a CaFFe split (:mod:`ssl4sar.bench.accuracy`)."""

    name: ClassVar[str] = "accuracy"
    checkpoint: str | Path = ""
    data_dir: str | Path = ""
    split: str = "test"
    preset: str | Mapping[str, Any] | None = None
    stride_fractions: Sequence[float] = ()

    def check(self) -> None:
        from ssl4sar.data.caffe import discover
        from ssl4sar.errors import DataError

        if not Path(self.checkpoint).is_file():
            raise DataError(self.checkpoint, "checkpoint file not found", "the CKPT of --accuracy CKPT DATA")
        discover(self.data_dir, self.split)  # DataError naming the folder or file that is missing

    def run(self) -> list[dict[str, Any]]:
        from ssl4sar.bench.accuracy import fast_path_accuracy

        return [fast_path_accuracy(self.checkpoint, self.data_dir, split=self.split, device=self.device,
                                   preset=self.preset, stride_fractions=self.stride_fractions)]


# ------------------------------------------------------------------------------------------------ plan


def selected(key: str, only: Sequence[str] | None) -> bool:
    """Whether the benchmark ``key`` (``name/variant``) is chosen by ``only`` (names, keys or shell patterns)."""
    if not only:
        return True
    name = key.split("/", 1)[0]
    for token in only:
        token = token.strip()
        if token in (name, key) or (any(ch in token for ch in "*?[") and fnmatch.fnmatchcase(key, token)):
            return True
    return False


def check_only(plan: Sequence[Benchmark], only: Sequence[str] | None) -> None:
    """:class:`ValueError` naming every entry of ``only`` that selects none of the benchmarks of ``plan``, with the
    keys there are: a misspelt variant would run nothing, and the run would replace ``bench.json`` with an empty
    report."""
    if not only:
        return
    unmatched = [t for t in only if not any(selected(b.key, [t]) for b in plan)]
    if not unmatched:
        return
    hint = ""
    if not any(b.name == "accuracy" for b in plan) and any(
            fnmatch.fnmatchcase("accuracy", t.strip().split("/", 1)[0]) for t in unmatched):
        hint = "; the accuracy benchmark runs only with --accuracy CKPT DATA"
    raise ValueError(f"--only {unmatched}: no benchmark of this run has that name or key; choose names "
                     f"({', '.join(dict.fromkeys(b.name for b in plan))}), keys ({', '.join(b.key for b in plan)}) or "
                     f"shell patterns such as 'pretrain_step/opt*'{hint}")


def _paths(device: torch.device, quick: bool, compile: bool, inference: bool) -> list[ExecPath]:
    """Reference and fast path (and, for inference, the fast path in fp32); outside quick mode also the ablations
    (one switch each) of the fast path. On CUDA some ablations run in quick mode too:

    - the other memory layout (``fast-contiguous``): PyTorch's CUDA GroupNorm converted channels-last inputs to the
      contiguous layout for years (pytorch/pytorch#111824), so the decoder's norms may pay layout copies (the H200
      training profile's largest operator was ``copy_``);
    - training steps: polyphase upsampling (``fast-polyphase``; the library trains with the official upsampling),
      and the step without cuDNN's autotuning (``fast-no-cudnn-autotuning``), which the library's training switches
      on. (The atomic backward of nearest upsampling that the H200 profile of the compiled step showed is gone from
      ``fast-compile`` itself: compiled, the upsampling is a broadcast,
      :func:`ssl4sar.models.tyrion.upsample_nearest_2x`.)
    """
    fast = fast_path(device) if inference else fast_training_path(device)
    cuda = device.type == "cuda"
    paths = [REFERENCE, fast]
    if inference or not quick:  # the exact (fp32) fast path: what bf16 adds on top of it
        paths.append(fast.with_(name="fast-fp32", precision="fp32"))
    if not quick or cuda:
        paths.append(fast.with_(name="fast-channels-last" if not fast.channels_last else "fast-contiguous",
                                channels_last=not fast.channels_last))
    if not quick:
        paths.append(fast.with_(name="fast-timm-attention", fused=False))
        if inference:
            paths.append(fast.with_(name="fast-full-decoder", centre_only=False))
            paths.append(fast.with_(name="fast-nearest-upsampling", polyphase=False))
            paths.append(fast.with_(name="fast-1-worker", workers=1))
            paths.append(fast.with_(name="fast-batch-1", batch=1))
            paths.append(fast.with_(name="fast-batch-8", batch=8))
        if device.type == "cpu" and torch.get_num_threads() > 1:
            paths.append(fast.with_(name="fast-1-thread", threads=1))
    if not inference and (not quick or cuda):
        paths.append(fast.with_(name="fast-polyphase", polyphase=True))
    if not inference and cuda:  # what cuDNN's autotuning (on in the library's training) gives
        paths.append(fast.with_(name="fast-no-cudnn-autotuning", cudnn_autotuning=False))
    if compile:
        paths.append(fast.with_(name="fast-compile", compile=True))
    return paths


def plan_benchmarks(cfg: Mapping[str, Any], *, device: torch.device, quick: bool, compile: bool,
                    batch: int | None = None, data_dir: str | Path | None = None, seed: int = 0,
                    preset_name: str = "paper", accuracy: tuple[str | Path, str | Path] | None = None
                    ) -> list[Benchmark]:
    """The benchmarks for this device and mode, in run order (see :mod:`ssl4sar.bench`). A ``batch`` below 1 or a
    ``seed`` outside numpy's range is a :class:`~ssl4sar.errors.SettingError`, before anything runs."""
    if batch is not None and batch < 1:  # 0 would otherwise read as "the default" below
        raise SettingError(f"batch size must be at least 1, got {batch}")
    check_seed(seed)
    gpu = device.type == "cuda"
    dev = str(device)
    model_cfg = dict(cfg["model"])
    if gpu:
        train_batch = batch or {"smoke": 8, "demo": 32}.get(preset_name, 16)
        infer_batch = batch or 16
        rounds, wpa = (3, 7) if quick else (10, 15)
        # the fast path's arithmetic: bf16 where the GPU computes it natively, float32 on a T4 or V100
        mm = MatmulPeak("", dev, fast_path(device).amp_dtype(device) or torch.float32, 8192, 10 if quick else 30)
    else:
        train_batch = batch or 2
        # inference: 2 windows per forward pass (on the 2-core CPU 1.14-1.25x the windows/s of 8); 4 x 4 windows = 8
        # batches, 4 for each parallel forward pass of the fast path (inference.default_inference_workers), as in
        # the steady state of a whole scene
        infer_batch = batch or 2
        rounds, wpa = (3, 4) if quick else (5, 8)
        mm = MatmulPeak("", dev, torch.float32, 512 if preset_name == "smoke" else 2048, 3 if quick else 10)
    mm.variant = f"{str(mm.dtype).replace('torch.', '')}-{mm.n}"
    out: list[Benchmark] = [mm]
    train_paths = _paths(device, quick, compile, inference=False)
    out.append(FinetuneStep("reference-vs-fast", dev, model_cfg, train_paths, train_batch, rounds, 1, seed))
    from ssl4sar.pretrain.common import method_settings

    for method in ("optsimmim", "opttranslator"):
        settings = method_settings(cfg, method) if "pretrain" in cfg else None
        out.append(PretrainStep(method, dev, model_cfg, train_paths, train_batch, max(2, rounds - 1), 1, seed,
                                method=method, method_settings=settings))
    c = int(model_cfg.get("img_size", paper_preset().model.img_size))
    inf = cfg.get("inference", {})
    stride = int(inf.get("stride", c // 4))
    out.append(SlidingWindow(f"stride{stride}", dev, model_cfg, _paths(device, quick, compile, inference=True),
                             wpa, stride, inf.get("gaussian_sigma"), infer_batch, rounds, seed))
    pp_size = 512 if preset_name == "smoke" else 5000
    out.append(PostprocessMDE(f"{pp_size}px", "cpu", pp_size, 1 if quick else 3, seed))
    data_cfg = dict(cfg.get("data", {}))
    scene_size = tuple(cfg.get("synthetic", {}).get("scene_size", paper_preset().synthetic.scene_size))
    n_samples = (8 if preset_name == "smoke" else 16) if quick else 200
    for all_aug in (False, True):
        label = f"{data_cfg.get('context_size', c)}px-" + ("all-augmentations" if all_aug else "preset-probabilities")
        out.append(DataSampler(label, "cpu", data_cfg, n_samples, 1 if quick else 5, data_dir, scene_size,  # type: ignore[arg-type]
                               all_aug, seed))
    pre_cfg = dict(cfg.get("pretrain", {}))
    pc = int(pre_cfg.get("context_size", c))
    # the paper's mean SAR image (2.05 MP) on 8 synthetic glaciers; the smoke preset's small scenes on 6
    pool = (6, tuple(scene_size)) if preset_name == "smoke" else (8, (1200, 1600))
    out.append(PretrainSampler(f"{pc}px-{pool[0]}-glaciers", "cpu", pre_cfg, 8 if preset_name == "smoke" else 24,
                               3 if quick else 5, pool[0], pool[1], seed))
    if accuracy is not None:
        ckpt, data = accuracy
        for split in ("test", "val"):  # val too: a weak (demo) model may miss every test front, leaving no MDE
            out.append(Accuracy(f"{Path(ckpt).stem}-{split}", dev, ckpt, data, split, None, (0.375, 0.5)))
    return out
