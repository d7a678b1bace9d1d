"""Roofline bounds of a TYRION training step: the fraction of a device's matmul peak that the network's own shapes
allow, and (with ``--measure``) what the device's kernels for those shapes need.

The training step (forward, the fine-tuning loss, backward, SGD with momentum) runs on the ``meta`` device — shapes
only, nothing computed, seconds on any machine — in bf16 with fused SDPA window attention, as the library's fast path
computes on a GPU. Every ATen operator it dispatches is recorded with its FLOPs (PyTorch's own counting formulas;
matrix products, convolutions and attention) and the bytes it moves (its inputs read once, its outputs written once;
views move nothing; a broadcast operand counts its stored elements). An operator then takes at least
``max(FLOPs / peak, bytes / bandwidth)`` — the roofline — and a step at least the sum over its operators. Two
traffic models bound a step from both sides:

``unfused``  every operator reads its inputs from and writes its outputs to device memory: what eager PyTorch does,
             with every kernel at the roofline. The measured eager fast path should sit below it.
``fused``    only the matrix products, convolutions, attention and the optimizer move bytes: every element-wise,
             normalisation and reduction operator is fused into them for free. No implementation of this network
             can beat it (at that peak and bandwidth); ``torch.compile`` moves a step from the first towards it.

The fraction of peak is defined as in ``make bench``: :data:`~ssl4sar.bench.measure.TRAINING_FLOPS_FACTOR` × the
forward FLOPs per sample (the useful work), divided by the step time and the peak. Attention's backward recomputes
the scores; that work costs time but does not count as useful.

Fused attention is modelled as one kernel per call (forward: reads q, k, v and the additive bias, writes the
output and the log-sum-exp rows; backward: reads those and the output's gradient, writes the gradients of q, k, v
and — when the bias needs one, as SwinV2's continuous position bias does in training — a bias gradient of the
broadcast shape, one value per attention score, which PyTorch's memory-efficient kernel writes before it is summed).
On ``meta`` PyTorch would run SDPA's unfused math form, so :func:`training_step_costs` substitutes that model. The
recording itself, and the replay of the compute kernels on a device, live in :mod:`ssl4sar.bench.traffic`.

``python -m ssl4sar.bench.roofline --peak-tflops P --bandwidth-gbs B`` evaluates the bounds for a device's numbers;
``--measure`` measures both on ``--device`` (:func:`~ssl4sar.bench.environment.measure_matmul_peak` in bf16,
:func:`~ssl4sar.bench.environment.measure_memory_bandwidth`). Writes ``roofline.json`` and ``roofline.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils._pytree import tree_flatten

from ssl4sar.bench.measure import TRAINING_FLOPS_FACTOR
from ssl4sar.bench.traffic import (
    KINDS,
    Kernel,
    OpCost,
    TensorSpec,
    TrafficRecorder,
    fused_attention_model,
    time_kernels,
)
from ssl4sar.io import write_text_atomic

log = logging.getLogger(__name__)

__all__ = ["SCHEMA", "StepCosts", "build_report", "find_reports", "load_report", "main", "render_markdown",
           "roofline", "training_step_costs"]

SCHEMA = "ssl4sar-roofline/1"


@dataclasses.dataclass
class StepCosts:
    """What one training step of ``batch_size`` samples does: per-operator costs, distinct compute kernels, and the
    forward FLOPs of the whole batch."""

    costs: list[OpCost]
    kernels: list[Kernel]
    forward_flops: float
    batch_size: int


def training_step_costs(model_config: Mapping[str, Any], batch_size: int,
                        dtype: torch.dtype = torch.bfloat16, channels_last: bool = False) -> StepCosts:
    """Per-operator costs and compute kernels of one fine-tuning step of batch ``batch_size``, recorded on ``meta``.

    The network computes in ``dtype`` with fused attention; the loss is :func:`ssl4sar.losses.tyrion_loss` on
    float32 logits (as the training step does). ``channels_last``: convolution weights and the input image in
    channels-last layout, as the fast path on CUDA (the bytes are the same; the layouts of the recorded kernels, and
    so the kernels that :func:`time_kernels` runs, differ). The optimizer is SGD with momentum on float32 master
    weights, counted as one ``optimizer`` row: per parameter, weight, gradient and momentum read and weight and
    momentum written (4 bytes each), and the float32 weight read and written in ``dtype`` once (autocast's cast).
    """
    from ssl4sar.losses import tyrion_loss
    from ssl4sar.models.fast import enable_fused_attention, set_channels_last
    from ssl4sar.models.tyrion import Tyrion

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    recorder = TrafficRecorder()
    with torch.device("meta"):
        model = Tyrion.from_config(model_config)
        enable_fused_attention(model)
        model.to(dtype).train()
        set_channels_last(model, channels_last)
        c = model.img_size
        x = torch.empty(batch_size, 1, c, c, dtype=dtype)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.empty(batch_size, c, c, dtype=torch.long)
        with recorder, fused_attention_model(recorder):
            logits = model(x)
            recorder.phase = "loss"
            loss = tyrion_loss(logits.float(), y)[0]
            recorder.phase = "backward"
            loss.backward()
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    cast = torch.empty((), dtype=dtype, device="meta").element_size()
    recorder.add("sgd_momentum", "optimizer", 0.0, float(n_params * (5 * 4 + 4 + cast)))
    return StepCosts(list(recorder.costs.values()), list(recorder.kernels.values()), recorder.forward_flops,
                     batch_size)


def check_device_limits(peak_tflops: float, bandwidth_gb_per_s: float) -> None:
    """``ValueError`` unless the device's matmul peak (TFLOP/s) and memory bandwidth (GB/s) are positive, finite
    numbers (NaN fails too): every bound and fraction of the peak divides by them."""
    if not all(v > 0 and math.isfinite(v) for v in (peak_tflops, bandwidth_gb_per_s)):
        raise ValueError(f"peak ({peak_tflops} TFLOP/s) and bandwidth ({bandwidth_gb_per_s} GB/s) must be positive, "
                         "finite numbers")


def roofline(step: StepCosts, peak_tflops: float, bandwidth_gb_per_s: float,
             kernel_seconds: Sequence[float] | None = None) -> dict[str, Any]:
    """The bounds of a step from its costs, with a breakdown by kind.

    Args:
        step: :func:`training_step_costs`' record.
        peak_tflops: the device's matmul peak (TFLOP/s); ``bandwidth_gb_per_s``: its memory bandwidth (10⁹ B/s).
        kernel_seconds: optionally :func:`time_kernels` of ``step.kernels`` on that device: adds the bound
            ``measured kernels`` (the compute kernels as measured, everything else fused away, the optimizer at its
            roofline) and each kernel's time and fraction of the peak.
    Returns ``{"bounds": {model: {step_s, samples_per_s, fraction_of_peak}}, "kinds": [...], ...}``.
    """
    check_device_limits(peak_tflops, bandwidth_gb_per_s)
    peak, bandwidth, costs = peak_tflops * 1e12, bandwidth_gb_per_s * 1e9, step.costs
    useful = TRAINING_FLOPS_FACTOR * step.forward_flops

    def bound(seconds: float) -> dict[str, float]:
        return {"step_s": seconds, "samples_per_s": step.batch_size / seconds,
                "fraction_of_peak": useful / seconds / peak}

    bounds = {model: bound(sum(c.seconds(peak, bandwidth, fused=model == "fused") for c in costs))
              for model in ("unfused", "fused")}
    measured: dict[str, float] = {}
    kernels = []
    if kernel_seconds is not None:
        if len(kernel_seconds) != len(step.kernels):
            raise ValueError(f"{len(kernel_seconds)} kernel times for {len(step.kernels)} kernels")
        for k, t in zip(step.kernels, kernel_seconds, strict=True):
            measured[k.kind] = measured.get(k.kind, 0.0) + k.count * t
            kernels.append({"name": k.name, "kind": k.kind, "count": k.count, "flops": k.flops, "bytes": k.bytes,
                            "seconds": t, "total_s": k.count * t,
                            "roofline_s": max(k.flops / peak, k.bytes / bandwidth),
                            "fraction_of_peak": k.flops / t / peak if t > 0 else None,
                            "operands": _describe(k.spec)})
        kernels.sort(key=lambda r: -r["total_s"])
        measured["optimizer"] = sum(c.seconds(peak, bandwidth, fused=True) for c in costs if c.kind == "optimizer")
        bounds["measured kernels"] = bound(sum(measured.values()))
    kinds = []
    for kind in KINDS:
        rows = [c for c in costs if c.kind == kind]
        flops, moved = sum(c.flops for c in rows), sum(c.bytes for c in rows)
        kinds.append({
            "kind": kind, "calls": sum(c.calls for c in rows), "flops": flops, "bytes": moved,
            "flop_per_byte": flops / moved if moved else None,
            "unfused_s": sum(c.seconds(peak, bandwidth, fused=False) for c in rows),
            "fused_s": sum(c.seconds(peak, bandwidth, fused=True) for c in rows),
            "measured_s": measured.get(kind, 0.0) if kernel_seconds is not None else None,
        })
    return {"peak_tflops": peak_tflops, "bandwidth_gb_per_s": bandwidth_gb_per_s,
            "ridge_flop_per_byte": peak / bandwidth, "batch_size": step.batch_size,
            "useful_flops_per_sample": useful / step.batch_size,
            "executed_flops_per_sample": sum(c.flops for c in costs) / step.batch_size,
            "bytes_per_sample_unfused": sum(c.bytes for c in costs) / step.batch_size,
            "bounds": bounds, "kinds": kinds, "kernels": kernels}


def _describe(spec: Any) -> str:
    """Operand shapes of a kernel, e.g. ``(4096, 96) × (96, 288)``."""
    if not isinstance(spec, tuple):
        return ""
    tensors = [t for t in tree_flatten(spec[1:])[0] if isinstance(t, TensorSpec)]
    return " × ".join(str(tuple(t.shape)) for t in tensors[:3])


def _num(x: float) -> str:
    """``12,345`` from 10 up, three significant digits below."""
    return f"{x:,.0f}" if abs(x) >= 10 else f"{x:.3g}"


def render_markdown(report: Mapping[str, Any], top: int = 10) -> str:
    """The report as Markdown: the bounds (and a measured throughput, when given), the breakdown by kind and, with
    measured kernels, the ``top`` kernels by time."""
    b = report["bounds"]
    lines = [
        f"Roofline of a TYRION training step, preset `{report['preset']}`, batch {report['batch_size']}, "
        f"{report['dtype']}{', channels-last' if report.get('channels_last') else ''}: peak "
        f"{report['peak_tflops']:.1f} TFLOP/s ({report['peak_source']}), bandwidth "
        f"{report['bandwidth_gb_per_s']:.0f} GB/s ({report['bandwidth_source']}), ridge "
        f"{report['ridge_flop_per_byte']:.0f} FLOP/byte. Useful work {report['useful_flops_per_sample'] / 1e9:.1f} "
        f"GFLOP per sample ({report['executed_flops_per_sample'] / 1e9:.1f} executed).",
        "",
        "| bound | step (ms) | samples/s at most | % of peak at most |",
        "|---|---|---|---|",
    ]
    for model, row in b.items():
        lines.append(f"| {model} | {row['step_s'] * 1e3:.1f} | {row['samples_per_s']:.1f} | "
                     f"{100 * row['fraction_of_peak']:.1f} % |")
    measured = report.get("measured")
    if measured:
        lines.append(f"| measured step: {measured['what']} | "
                     f"{report['batch_size'] / measured['samples_per_s'] * 1e3:.1f} | "
                     f"{measured['samples_per_s']:.1f} | {100 * measured['fraction_of_peak']:.1f} % |")
    has_measured = any(k["measured_s"] is not None for k in report["kinds"])
    lines += ["", "| kind | calls | GFLOP | GB moved | FLOP/byte | unfused (ms) | fused (ms) |"
              + (" measured (ms) |" if has_measured else ""),
              "|---|---|---|---|---|---|---|" + ("---|" if has_measured else "")]
    for k in report["kinds"]:
        fpb = "" if k["flop_per_byte"] is None else f"{k['flop_per_byte']:.0f}"
        row = (f"| {k['kind']} | {k['calls']} | {_num(k['flops'] / 1e9)} | {_num(k['bytes'] / 1e9)} | {fpb} | "
               f"{k['unfused_s'] * 1e3:.1f} | {k['fused_s'] * 1e3:.1f} |")
        if has_measured:
            row += f" {k['measured_s'] * 1e3:.1f} |"
        lines.append(row)
    if report.get("kernels"):
        lines += ["", f"The {top} compute kernels that take longest in a step (measured):", "",
                  "| kernel | operands | calls | ms per step | roofline (ms) | % of peak |",
                  "|---|---|---|---|---|---|"]
        for k in report["kernels"][:top]:
            frac = "" if k["fraction_of_peak"] is None else f"{100 * k['fraction_of_peak']:.1f} %"
            lines.append(f"| {k['name']} | {k['operands']} | {k['count']} | {k['total_s'] * 1e3:.2f} | "
                         f"{k['count'] * k['roofline_s'] * 1e3:.2f} | {frac} |")
    return "\n".join(lines) + "\n"


def build_report(preset: str, batch_size: int, peak_tflops: float, bandwidth_gb_per_s: float, *,
                 peak_source: str, bandwidth_source: str, time_on: str | None = None, channels_last: bool = False,
                 measured_samples_per_s: float | None = None, measured_what: str = "") -> dict[str, Any]:
    """:func:`roofline` of preset ``preset``'s network at ``batch_size`` in bf16, with where the device numbers come
    from, the compute kernels timed on ``time_on`` (a device) when given and, optionally, a measured throughput of the
    same step for comparison."""
    from ssl4sar.config import load_preset

    step = training_step_costs(load_preset(preset)["model"], batch_size, channels_last=channels_last)
    seconds = time_kernels(step.kernels, time_on) if time_on else None
    report = {"schema": SCHEMA, "preset": preset, "dtype": "bfloat16", "peak_source": peak_source,
              "bandwidth_source": bandwidth_source, "kernels_timed_on": time_on, "channels_last": channels_last,
              **roofline(step, peak_tflops, bandwidth_gb_per_s, seconds),
              "operators": [dataclasses.asdict(c) for c in sorted(step.costs, key=lambda c: -c.bytes)]}
    if measured_samples_per_s:
        report["measured"] = {
            "what": measured_what or "measured", "samples_per_s": measured_samples_per_s,
            "fraction_of_peak": measured_samples_per_s * report["useful_flops_per_sample"] / (peak_tflops * 1e12)}
    return report


def find_reports(folder: str | Path | None) -> list[tuple[str, Path]]:
    """The ``roofline.json`` reports under ``folder`` (any depth), as (label, path) sorted by label; the label is the
    report's folder relative to ``folder``. Missing folder: none."""
    if folder is None or not Path(folder).is_dir():
        return []
    root = Path(folder)
    return sorted((p.parent.relative_to(root).as_posix(), p) for p in root.glob("**/roofline.json"))


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a ``roofline.json`` written by this module; :class:`~ssl4sar.errors.DataError` naming the file if it is
    not one (unreadable, not JSON, another schema, or without its bounds)."""
    from ssl4sar.errors import DataError

    p = Path(path)
    try:
        report = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(p, f"cannot read the roofline report: {exc}", "re-run  python -m ssl4sar.bench.roofline") \
            from exc
    schema = report.get("schema") if isinstance(report, dict) else None
    if schema != SCHEMA:
        raise DataError(p, f"not a roofline report (schema {schema!r}, expected {SCHEMA!r})",
                        "re-run  python -m ssl4sar.bench.roofline")
    missing = [k for k in ("bounds", "kinds", "batch_size", "peak_tflops", "bandwidth_gb_per_s") if k not in report]
    if missing or not all(m in report["bounds"] for m in ("unfused", "fused")):
        raise DataError(p, f"roofline report without {missing or 'its unfused and fused bounds'}",
                        "re-run  python -m ssl4sar.bench.roofline")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ssl4sar.bench.roofline", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="paper")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--peak-tflops", type=float, help="the device's bf16 matmul peak (TFLOP/s)")
    p.add_argument("--bandwidth-gbs", type=float, help="the device's memory bandwidth (GB/s)")
    p.add_argument("--peak-source", default="given", help="where --peak-tflops comes from (a few words)")
    p.add_argument("--bandwidth-source", default="given", help="where --bandwidth-gbs comes from (a few words)")
    p.add_argument("--measure", action="store_true",
                   help="measure peak and bandwidth on --device (instead of the two numbers) and time the step's "
                        "compute kernels there")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto",
                   help="convolutions in channels-last layout (auto: on for CUDA, as the fast path)")
    p.add_argument("--measured-samples-per-s", type=float, help="a measured throughput of this step to compare")
    p.add_argument("--measured-what", default="", help="what that measurement is (a few words)")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    if a.batch_size < 1:
        p.error(f"--batch-size must be at least 1, got {a.batch_size}")
    peak, bandwidth = a.peak_tflops, a.bandwidth_gbs
    peak_source, bandwidth_source = a.peak_source, a.bandwidth_source
    if a.measure:
        from ssl4sar.bench.environment import measure_matmul_peak, measure_memory_bandwidth

        dev = torch.device(a.device)
        peak = measure_matmul_peak(dev, torch.bfloat16, n=8192 if dev.type == "cuda" else 2048)["tflops"]
        bandwidth = measure_memory_bandwidth(dev)["gb_per_s"]
        peak_source = f"measured on {a.device}: bf16 matmul"
        bandwidth_source = f"measured on {a.device}: copy"
    if peak is None or bandwidth is None:
        p.error("give --peak-tflops and --bandwidth-gbs, or --measure")
    try:
        check_device_limits(peak, bandwidth)
    except ValueError as exc:
        p.error(str(exc))
    channels_last = a.channels_last == "on" or (a.channels_last == "auto" and torch.device(a.device).type == "cuda")
    report = build_report(a.preset, a.batch_size, peak, bandwidth, peak_source=peak_source,
                          bandwidth_source=bandwidth_source, time_on=a.device if a.measure else None,
                          channels_last=channels_last,
                          measured_samples_per_s=a.measured_samples_per_s, measured_what=a.measured_what)
    try:
        a.out.mkdir(parents=True, exist_ok=True)
        md = render_markdown(report)
        write_text_atomic(a.out / "roofline.json", json.dumps(report, indent=1) + "\n")
        write_text_atomic(a.out / "roofline.md", md)
    except OSError as exc:
        p.exit(2, f"{p.prog}: cannot write the report into {a.out}: {exc}\n")
    print(md, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
