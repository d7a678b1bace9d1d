"""Running a benchmark plan: :func:`run_benchmarks` measures, collects the rows and the fast/reference ratios, and
rewrites ``bench.json`` / ``bench.md`` after every benchmark (an interrupted run keeps its finished rows)."""

from __future__ import annotations

import datetime as dt
import gc
import logging
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ssl4sar.bench.attention import attention_backends, backends_line
from ssl4sar.bench.environment import environment
from ssl4sar.bench.plan import check_only, plan_benchmarks, selected
from ssl4sar.bench.report import SCHEMA, json_safe, load_report, make_row, ratios_of, render_markdown
from ssl4sar.bench.windows import TEN_MP_SIDE
from ssl4sar.errors import DataError
from ssl4sar.io import write_json_atomic, write_text_atomic

__all__ = ["SMOKE_SELECTION", "book_report", "resolve_compile", "run_benchmarks"]

#: what the smoke preset measures in the book: one benchmark of each kind
SMOKE_SELECTION = ("matmul_peak", "finetune_step", "pretrain_step/opttranslator", "sliding_window",
                   "postprocess_mde", "data_sampler/*preset*", "pretrain_sampler")

log = logging.getLogger(__name__)
#: the benchmarks that run the preset's network (they need the matmul peak and get the attention-kernel record)
_MODEL_BENCHMARKS = ("finetune_step", "pretrain_step", "sliding_window")

_NOTES = [
    "Model benchmarks compare the reference path (what the official code does: fp32, timm's window attention, full "
    "decoder output, one window per forward pass at inference, eager, no cuDNN autotuning on GPUs) with the library's "
    "fast path in the same process, in alternating rounds; ratios use the best round of each.",
    "FLOPs: torch.utils.flop_counter.FlopCounterMode on the meta device, forward of one item (matmul, convolution, "
    "attention; 2 FLOPs per multiply-add; norms and element-wise ops not counted); training rows use 3 x forward; "
    "the sliding-window rows count the full forward (the fast path's centre-only decoder does less).",
    "% of peak: achieved FLOP/s over the measured dense matmul peak of this device (bf16 on GPU, fp32 on CPU: "
    "bf16 rows of a CPU with native bf16 can exceed 100 %).",
    "Peak memory: GPU rows torch.cuda.max_memory_allocated less what the benchmark's earlier paths keep "
    "allocated (their models; for training rows also gradients and optimiser state); CPU rows the peak resident "
    "set size of the process (VmHWM, reset before the measured step) with its increase during the step in brackets.",
    f"Sliding-window minutes per 10-MP scene are extrapolated from windows/s and the window count of a {TEN_MP_SIDE}"
    f"x{TEN_MP_SIDE} px scene at the preset's stride.",
    "Training/inference inputs are random tensors of the right shapes (no data-dependent control flow).",
]


def resolve_compile(compile: str | bool, device: torch.device, quick: bool) -> bool:
    """``"auto"`` (compiled variants on CUDA in full mode), ``"on"`` / ``"off"`` or a bool → bool."""
    if isinstance(compile, str):
        if compile not in ("auto", "on", "off"):
            raise ValueError(f"compile must be 'auto', 'on' or 'off', got {compile!r}")
        return (device.type == "cuda" and not quick) if compile == "auto" else compile == "on"
    return bool(compile)


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_benchmarks(out_dir: str | Path | None = "bench_results", *, quick: bool = True,
                   device: str | torch.device = "auto", only: Sequence[str] | None = None, preset: str = "paper",
                   compile: str | bool = "auto", batch: int | None = None, data_dir: str | Path | None = None,
                   seed: int = 0, append: bool = False,
                   accuracy: tuple[str | Path, str | Path] | None = None) -> dict[str, Any]:
    """Run the benchmarks and (when ``out_dir`` is given) write ``bench.json`` and ``bench.md`` there.

    Args:
        out_dir: output folder (created); rewritten after every benchmark.
        quick: reference and fast path only, few rounds (minutes on a 2-core CPU); ``False``: also the ablations
            of the fast path (one switch each) and more rounds.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        only: benchmark names (``finetune_step``), keys (``sliding_window/stride128``) or shell-style patterns;
            ``None`` runs everything; an entry that selects nothing of this run is a :class:`ValueError`.
        preset: ``paper`` (default), ``demo``, ``smoke`` or a YAML preset path: the model and sizes.
        compile: ``"auto"`` (a ``torch.compile`` path on CUDA in full mode), ``"on"``, ``"off"`` or a bool.
        batch: override the training and inference batch size.
        data_dir: CaFFe root for the data-sampler benchmark (default: synthetic scenes).
        seed: seed of weights, inputs and scenes.
        append: merge into the ``bench.json`` already in ``out_dir`` (same device, preset and mode, else
            :class:`DataError`); rows of re-run benchmarks are replaced.
        accuracy: ``(checkpoint, CaFFe root)``: also measure the fast path's accuracy on its test and val splits
            (:mod:`ssl4sar.bench.accuracy`); a missing checkpoint or split is a :class:`DataError` before anything
            runs.

    Returns the report: ``schema``, ``created``, ``mode``, ``preset``, ``model``, ``environment``, ``peak``,
    ``results`` (rows, :func:`ssl4sar.bench.report.make_row`), ``ratios`` (:func:`ssl4sar.bench.report.ratios_of`),
    ``failed`` and ``skipped``, ``notes``.
    """
    from ssl4sar.config import load_preset
    from ssl4sar.models.fast import resolve_device

    dev = resolve_device(device)
    cfg = load_preset(preset)
    preset_name = str(cfg.get("name", preset))
    use_compile = resolve_compile(compile, dev, quick)
    plan = plan_benchmarks(cfg, device=dev, quick=quick, compile=use_compile, batch=batch, data_dir=data_dir,
                           seed=seed, preset_name=preset_name, accuracy=accuracy)
    check_only(plan, only)  # before anything is measured or written
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest convolution algorithms
    chosen = [b for b in plan if selected(b.key, only)]
    for b in chosen:  # missing inputs (an --accuracy checkpoint) now, not after an hour of other benchmarks
        b.check()
    model_cfg = dict(cfg["model"])
    is_paper = preset_name == "paper"
    notes = list(_NOTES)
    if not is_paper:
        notes.insert(0, f"Preset '{preset_name}': the {model_cfg.get('img_size')} px {preset_name} model (embed_dim "
                        f"{model_cfg.get('embed_dim')}, depths {model_cfg.get('depths')}) — NOT the paper model; "
                        "sizes are reduced everywhere.")
    report: dict[str, Any] = {
        "schema": SCHEMA, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full", "preset": preset_name, "paper_model": is_paper, "model": model_cfg,
        "compile": use_compile, "environment": environment(dev), "peak": None, "results": [], "ratios": [],
        "failed": [], "skipped": [], "notes": notes,
    }
    out = Path(out_dir) if out_dir is not None else None
    if append and out is not None and (out / "bench.json").is_file():
        _merge_old(report, load_report(out / "bench.json"), out / "bench.json", {b.key for b in chosen})

    if any(b.name in _MODEL_BENCHMARKS for b in chosen):
        # which attention kernel each block gets on this device: a fast path that silently falls back to PyTorch's
        # math kernel is slow (diagnostic only: a failure here must not cost the benchmarks)
        try:
            report["attention_backends"] = attention_backends(model_cfg, dev)
            log.info("attention kernels of the fast path: %s", backends_line(report["attention_backends"]))
        except Exception as exc:
            report["attention_backends"] = {"error": f"{type(exc).__name__}: {exc}"}
            log.warning("attention kernels not determined: %s: %s", type(exc).__name__, exc)
        _free(dev)

    def save() -> None:
        report["ratios"] = ratios_of(report)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(out / "bench.json", json_safe(report))
            write_text_atomic(out / "bench.md", render_markdown(report))

    # the peak is the reference of every "% of peak": measure it whenever a model benchmark runs
    needs_peak = any(b.name in _MODEL_BENCHMARKS for b in chosen)
    if needs_peak and report["peak"] is None and not any(b.name == "matmul_peak" for b in chosen):
        chosen.insert(0, plan[0])
    t_start = time.perf_counter()
    for i, bench in enumerate(chosen):
        log.info("[%d/%d] %s on %s …", i + 1, len(chosen), bench.key, bench.device)
        t0 = time.perf_counter()
        try:
            raws = bench.run()
        except ImportError as exc:
            report["skipped"].append({"name": bench.name, "variant": bench.variant,
                                      "reason": f"{type(exc).__name__}: {exc}"})
            log.warning("%s skipped: %s", bench.key, exc)
            continue
        except Exception as exc:  # keep going: one failing benchmark (e.g. out of memory) must not lose the others
            report["failed"].append({"name": bench.name, "variant": bench.variant,
                                     "error": f"{type(exc).__name__}: {exc}",
                                     "traceback": traceback.format_exc(limit=6)})
            log.error("%s failed: %s: %s", bench.key, type(exc).__name__, exc)
            save()
            continue
        finally:
            _free(dev)
        if bench.name == "matmul_peak":
            report["peak"] = raws[0]
        rows = [make_row(bench.name, bench.variant, raw, report["peak"]) for raw in raws]
        report["results"] = [r for r in report["results"] if r.get("case", r["variant"]) != bench.variant
                             or r["name"] != bench.name]
        wall = time.perf_counter() - t0
        for row in rows:
            row["wall_s"] = wall
            log.info("    %s: %.4g %s%s", row["variant"], row["throughput"] or float("nan"), row["throughput_unit"],
                     "" if row.get("speedup") is None else f" ({row['speedup']:.2f}× reference)")
        report["results"].extend(rows)
        save()
    report["total_wall_s"] = time.perf_counter() - t_start
    save()
    return report


def _merge_old(report: dict[str, Any], old: dict[str, Any], path: Path, new_keys: set[str]) -> None:
    """Keep the rows of ``old`` (the report already on disk) that this run does not measure again, its peak and its
    attention-kernel record."""
    env, oenv = report["environment"], old["environment"]
    if (oenv.get("device_name"), old.get("preset"), old.get("mode")) != (env.get("device_name"), report["preset"],
                                                                         report["mode"]):
        raise DataError(path, f"--append: the report is from {oenv.get('device_name')}, preset {old.get('preset')}, "
                        f"{old.get('mode')} mode; this run is {env.get('device_name')}, preset {report['preset']}, "
                        f"{report['mode']} mode", "use another --out folder")

    def kept(r: dict[str, Any]) -> bool:
        return f"{r['name']}/{r.get('case', r['variant'])}" not in new_keys

    report["results"] = [r for r in old["results"] if kept(r)]
    report["failed"] = [f for f in old.get("failed", []) if kept(f)]
    report["skipped"] = [f for f in old.get("skipped", []) if kept(f)]
    report["peak"] = old.get("peak")
    report["compile"] = bool(old.get("compile")) or report["compile"]
    if old.get("attention_backends"):  # replaced below when this run runs a network
        report["attention_backends"] = old["attention_backends"]


def book_report(out_dir: str | Path, *, preset: str, device: str | torch.device = "auto", seed: int = 0,
                caffe_root: str | Path | None = None, bench_json: str | Path | None = None,
                rerun: bool = False) -> tuple[dict[str, Any], Path, bool]:
    """The report a book chapter shows: ``bench_json`` (or ``out_dir/bench.json``) when it exists and ``rerun`` is
    false, else measured now into ``out_dir``. The mode follows the preset: full on a GPU with the paper preset,
    quick otherwise; the smoke preset measures :data:`SMOKE_SELECTION` only. ``caffe_root`` feeds the data sampler
    when it holds ``sar_images/train``.

    Returns ``(report, path of its bench.json, measured now?)``; :class:`FileNotFoundError` when ``bench_json``
    names a missing file and ``rerun`` is false.
    """
    from ssl4sar.config import load_preset
    from ssl4sar.models.fast import resolve_device

    out = Path(out_dir)
    path = Path(bench_json) if bench_json is not None else out / "bench.json"
    if path.is_file() and not rerun:
        return load_report(path), path, False
    if bench_json is not None and not rerun:
        raise FileNotFoundError(f"bench_json = {str(bench_json)!r} does not exist; produce it with "
                                f"`python -m ssl4sar.bench --out {path.parent}` or set bench_json = None")
    dev = resolve_device(device)
    preset_name = str(load_preset(preset).get("name", preset))
    root = Path(caffe_root) if caffe_root is not None else None
    report = run_benchmarks(out, quick=not (preset_name == "paper" and dev.type == "cuda"), device=dev,
                            only=list(SMOKE_SELECTION) if preset_name == "smoke" else None, preset=str(preset),
                            seed=seed, data_dir=root if root is not None and (root / "sar_images" / "train").is_dir()
                            else None)
    return report, out / "bench.json", True
