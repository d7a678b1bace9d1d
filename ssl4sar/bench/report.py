"""Report rows, ratios and rendering: a benchmark's raw dicts become table rows (:func:`make_row`), the model rows'
speed-ups over the reference path become the report's ``ratios`` (:func:`ratios_of`), and a report is written as
markdown (:func:`render_markdown`), read back (:func:`load_report`) and shown as frames and charts."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssl4sar.bench.windows import TEN_MP_SIDE
from ssl4sar.errors import DataError

__all__ = [
    "SCHEMA",
    "bar_chart",
    "environment_line",
    "report_header",
    "styled_ratios",
    "training_time_table",
    "json_safe",
    "find_reports",
    "load_report",
    "make_row",
    "ratios_frame",
    "ratios_of",
    "render_markdown",
    "results_frame",
    "variant_speedups",
]

SCHEMA = "ssl4sar-bench/3"
#: older schemas, still readable: /1 has no ratios; in /2 the pretraining steps' reference path ran fused attention
#: (the pretraining modules build their network with it, and the benchmark did not switch it off), so its
#: pretraining ratios are not against the official code and are left out when such a report is read
_OLD_SCHEMAS = ("ssl4sar-bench/1", "ssl4sar-bench/2")
_FUSED_PRETRAINING_REFERENCE = "ssl4sar-bench/2"
#: the report columns of a ratio: what a benchmark measures per item
_RATIO_METRIC = {"finetune_step": "samples/s", "pretrain_step": "samples/s", "sliding_window": "windows/s"}


def make_row(name: str, spec_variant: str, raw: Mapping[str, Any], peak: Mapping[str, Any] | None) -> dict[str, Any]:
    """A table row from one raw result dict (all raw fields kept under ``details``)."""
    path = raw.get("path")
    variant = spec_variant if path is None else (path if name != "pretrain_step" else f"{spec_variant}+{path}")
    if name == "pretrain_sampler":
        variant = f"{spec_variant}+{raw['variant']}"
    row: dict[str, Any] = {
        "name": name,
        "variant": variant,
        "case": spec_variant,
        "path": path,
        "device": raw.get("device", "cpu"),
        "device_name": raw.get("device_name"),
        "precision": raw.get("path_realised_precision", raw.get("precision", "-")),
        "batch": raw.get("batch_size"),
        "throughput": raw.get("throughput"),
        "throughput_unit": raw.get("throughput_unit"),
        "time_per_item_s": raw.get("time_per_item_s"),
        "speedup": raw.get("speedup"),
        "peak_memory_mb": raw.get("peak_memory_mb"),
        "memory_kind": raw.get("memory_kind"),
        "flops_per_item": raw.get("flops_per_item"),
        "achieved_tflops": None,
        "fraction_of_peak": None,
        "notes": [],
        "details": dict(raw),
    }
    notes = row["notes"]
    if raw.get("failed"):  # a path dropped from its comparison (out of memory): no numbers
        notes.append(f"failed: {raw['failed']}")
        return row
    if name == "matmul_peak":
        row.update(throughput=raw["tflops"], throughput_unit="TFLOP/s", time_per_item_s=raw["seconds_per_matmul"],
                   achieved_tflops=raw["tflops"], flops_per_item=2.0 * raw["n"] ** 3, precision=raw["dtype"])
    elif name == "sliding_window":
        row.update(throughput=raw["windows_per_s"], throughput_unit="windows/s",
                   time_per_item_s=1.0 / raw["windows_per_s"] if raw["windows_per_s"] > 0 else math.inf)
        notes.append(f"10-MP scene ({TEN_MP_SIDE}² px, {raw['windows_10mp_scene']} windows at stride {raw['stride']} "
                     f"px): {fmt_duration(raw['seconds_10mp_scene_extrapolated'])} extrapolated from "
                     f"{raw['n_windows']} windows of a {raw['scene_h']}² px scene")
    elif name in ("finetune_step", "pretrain_step"):
        row["throughput"] = raw.get("throughput_best", raw.get("throughput"))
        row["time_per_item_s"] = 1.0 / row["throughput"] if row["throughput"] else None
        if raw.get("compile"):
            notes.append(f"first step incl. compilation {raw['first_step_s']:.3g} s")
        notes.append(f"best of {raw['steps']} alternating rounds")
    if name in ("sliding_window", "finetune_step", "pretrain_step") and raw.get("compile_failed"):
        notes.append(f"torch.compile failed, eager: {raw['compile_failed'][:80]}")
    if name == "postprocess_mde":
        row.update(throughput=1.0 / raw["total_s"] if raw["total_s"] > 0 else math.inf, throughput_unit="scenes/s",
                   time_per_item_s=raw["total_s"], batch=1)
        notes.append(f"post-processing {raw['postprocess_s']:.3g} s + MDE {raw['mde_s']:.3g} s; "
                     f"{raw['n_pred']} / {raw['n_gt']} front px")
    elif name == "data_sampler":
        row["batch"] = 1
        notes.append(f"one worker (in-process), {raw['n_samples']} samples, {Path(str(raw['data'])).name} scenes "
                     f"{raw['scene_shapes']}")
    elif name == "pretrain_sampler":
        row["batch"] = 1
        notes.append(f"one worker (in-process), {raw['n_pairs']} pairs of {raw['n_glaciers']} glaciers "
                     f"({raw['mean_image_mp']:.2f} MP per image, {Path(str(raw['data'])).name}), "
                     f"{raw['optical_reads_per_sample']:.2f} optical reads per sample")
        if raw.get("speedup_over_on_demand") is not None:
            spread = raw.get("ratio_rounds") or []
            notes.append(f"{raw['speedup_over_on_demand']:.2f}x the on-demand reads of the same run"
                         + (f" ({min(spread):.2f}-{max(spread):.2f}x per round)" if spread else "")
                         + f"; preloading {raw['optical_mb']:.0f} MB took {raw['preload_s']:.3g} s")
    elif name == "accuracy":
        row.update(throughput=raw["agreement"], throughput_unit="class-map agreement", batch=None)
        notes.append(f"MDE {_num(raw['reference_mde_m'], '.2f')} m (reference) → {_num(raw['fast_mde_m'], '.2f')} m "
                     f"(fast), change {_num(raw['mde_change_m'], '+.2f')} m; {raw['disagreeing_px']} of "
                     f"{raw['pixels']} px differ")
    flops = row["flops_per_item"]
    if name != "matmul_peak" and flops and row["throughput"] and row["throughput_unit"] in ("samples/s", "windows/s"):
        row["achieved_tflops"] = flops * row["throughput"] / 1e12
        if peak and peak.get("tflops"):
            row["fraction_of_peak"] = row["achieved_tflops"] / peak["tflops"]
    return row


def _paired_round_ratios(row: Mapping[str, Any], ref: Mapping[str, Any]) -> list[float]:
    """The path's speed over the reference's in each alternating round (:func:`ssl4sar.bench.measure.alternate` times
    the two back to back, so a load that comes and goes hits both alike). Items per call are recovered from the
    best round (``throughput = items / min(round_s)``), so paths that run different batches compare correctly.
    Empty unless both rows carry the same number (≥ 2) of round times."""
    a = (row.get("details") or {}).get("round_s") or []
    b = (ref.get("details") or {}).get("round_s") or []
    if len(a) != len(b) or len(a) < 2 or min(a) <= 0 or min(b) <= 0:
        return []
    items_a, items_b = row["throughput"] * min(a), ref["throughput"] * min(b)
    return [(items_a / ta) / (items_b / tb) for ta, tb in zip(a, b)]


def ratios_of(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Speed of every path over the reference path of the same benchmark case, from the best alternating rounds:
    ``benchmark``, ``case``, ``path``, ``metric``, ``reference`` and ``value`` (per second), ``ratio``; the paired
    ratio of every round (``ratio_rounds``) and their range (``ratio_low``, ``ratio_high``; ``None`` without
    paired rounds), which shows how far one run's ratio can be trusted; and, for sliding windows, ``minutes_10mp``
    of both."""
    out = []
    rows = [r for r in report.get("results", []) if r.get("path") and r.get("speedup") is not None]
    for r in rows:
        if r["path"] == "reference":
            continue
        ref = next((b for b in rows if b["name"] == r["name"] and b["case"] == r["case"] and b["path"] == "reference"),
                   None)
        if ref is None:
            continue
        item = {"benchmark": r["name"], "case": r["case"], "path": r["path"], "metric": _RATIO_METRIC.get(r["name"]),
                "reference": ref["throughput"], "value": r["throughput"], "ratio": r["throughput"] / ref["throughput"]}
        paired = _paired_round_ratios(r, ref)
        item.update(ratio_rounds=paired, ratio_low=min(paired) if paired else None,
                    ratio_high=max(paired) if paired else None)
        if r["name"] == "sliding_window":
            item["reference_minutes_10mp"] = ref["details"]["seconds_10mp_scene_extrapolated"] / 60
            item["minutes_10mp"] = r["details"]["seconds_10mp_scene_extrapolated"] / 60
        out.append(item)
    return out


def json_safe(obj: Any) -> Any:
    """``obj`` with non-finite floats as ``None`` and numpy / torch scalars, dtypes and paths as plain values."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return json_safe(obj.item())
    if isinstance(obj, (torch.dtype, torch.device, Path)):
        return str(obj)
    return obj


# ------------------------------------------------------------------------------------------------ rendering


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _num(v: Any, spec: str) -> str:
    """``v`` in the format ``spec``, or "–" where there is no number: an MDE is NaN when no front was found, and
    bench.json holds it as null."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, spec)


def _fmt_time(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "–"
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def fmt_duration(s: float) -> str:
    if not math.isfinite(s):
        return "–"
    if s >= 2 * 3600:
        return f"{s / 3600:.3g} h"
    if s >= 120:
        return f"{s / 60:.3g} min"
    return f"{s:.3g} s"


def _fmt_memory(r: Mapping[str, Any]) -> str:
    """Peak memory cell: CUDA peak allocated; CPU peak RSS of the process with the increase during the
    benchmark in brackets; numpy-traced peak for the tracemalloc rows."""
    mem = r.get("peak_memory_mb")
    if mem is None:
        return "–"
    kind = r.get("memory_kind")
    if kind == "tracemalloc":
        return f"{mem:,.0f} MB (traced)"
    inc = (r.get("details") or {}).get("memory_increase_mb")
    if kind in ("rss_hwm", "rss_sampled", "ru_maxrss") and inc is not None and math.isfinite(inc):
        return f"{mem:,.0f} MB (+{max(inc, 0.0):,.0f})"
    return f"{mem:,.0f} MB"


def _section(title: str, compact: bool) -> str:
    """A section title: a heading, or (``compact``, inside a page that has its own headings) a bold line."""
    return f"**{title}**" if compact else f"## {title}"


def _ratio_lines(report: Mapping[str, Any], compact: bool = False) -> list[str]:
    ratios = report.get("ratios") or []
    if not ratios:
        return []
    lines = [_section("Fast path / reference path (same run, alternating rounds, best round of each)", compact), "",
             "In brackets: the lowest and highest ratio of a single round, reference and path timed back to back.", "",
             "| benchmark | case | path | reference | path | ratio | 10-MP scene (reference → path) |",
             "|---|---|---|---|---|---|---|"]
    for r in ratios:
        scene = (f"{r['reference_minutes_10mp']:.3g} → {r['minutes_10mp']:.3g} min"
                 if r.get("minutes_10mp") is not None else "–")
        spread = (f" ({r['ratio_low']:.2f}–{r['ratio_high']:.2f}×, {len(r['ratio_rounds'])} rounds)"
                  if r.get("ratio_low") is not None else "")
        lines.append(f"| {r['benchmark']} | {r['case']} | {r['path']} | {_fmt(r['reference'])} {r['metric']} | "
                     f"{_fmt(r['value'])} {r['metric']} | **{r['ratio']:.2f}×**{spread} | {scene} |")
    return [*lines, ""]


def _accuracy_lines(report: Mapping[str, Any], compact: bool = False) -> list[str]:
    accs = [r["details"] for r in report.get("results", []) if r["name"] == "accuracy"]
    if not accs:
        return []
    lines = [_section("Accuracy of the fast path", compact), ""]
    for acc in accs:
        lines += _accuracy_of(acc)
    return lines


def _accuracy_of(acc: Mapping[str, Any]) -> list[str]:
    def mde(key: str, spec: str = ".2f") -> str:  # missing in older reports, null where no front was found
        return _num(acc.get(key), spec)

    lines = [f"{acc['checkpoint']} on the {acc['split']} split of {acc['data']} ({acc['scenes']} scenes, stride "
             f"{acc['stride']} px, no TTA): class maps agree on **{_num(100 * acc['agreement'], '.4f')} %** of "
             f"{acc['pixels']:,} px; MDE {mde('reference_mde_m')} m (reference) vs {mde('fast_mde_m')} m "
             f"(fast), change **{mde('mde_change_m', '+.2f')} m**; missing fronts {acc['reference_missing_fronts']} "
             f"(reference) and {acc['fast_missing_fronts']} (fast). With every front piece kept (no 750 m minimum): "
             f"MDE {mde('reference_mde_all_pieces_m')} m vs {mde('fast_mde_all_pieces_m')} m, change "
             f"**{mde('mde_change_all_pieces_m', '+.2f')} m**. On the {acc.get('paired_images', 0)} "
             f"images where both paths found a front: {mde('paired_reference_mde_m')} m vs "
             f"{mde('paired_fast_mde_m')} m, change **{mde('paired_mde_change_m', '+.2f')} m**."
             + _largest_shares(acc.get("largest_mde_shares") or []), ""]
    if acc.get("strides"):
        lines += ["| stride (px) | windows vs default | MDE (m) | MDE change (m) | MDE change, paired (m) | "
                  "agreement | missing fronts |", "|---|---|---|---|---|---|---|"]
        for s in acc["strides"]:
            lines.append(f"| {s['stride']} | {_num(s['windows_ratio'], '.2f')}× | {_num(s['mde_m'], '.2f')} | "
                         f"{_num(s['mde_change_m'], '+.2f')} | {_num(s.get('paired_mde_change_m'), '+.2f')} "
                         f"({s.get('paired_images', 0)} img) | {_num(100 * s['agreement'], '.2f')} % | "
                         f"{s['missing_fronts']} |")
        lines.append("")
    return lines


def _largest_shares(shares: list[Mapping[str, Any]]) -> str:
    """The images that moved the pooled MDE most, as a sentence (empty without any)."""
    if not shares:
        return ""

    def front(n: int, mean: float | None) -> str:
        return f"{mean:.0f} m over {n} distances" if n else "no front"

    parts = [f"{r['image']} {r['share_m']:+.2f} m ({front(r['reference_distances'], r['reference_mean_m'])} → "
             f"{front(r['fast_distances'], r['fast_mean_m'])})" for r in shares]
    return " Largest shares of the change: " + "; ".join(parts) + "."


#: columns of the full table that :func:`render_markdown` leaves out with ``compact=True``, for a book's narrow
#: column: the device is in the heading, time per item is 1 / throughput, FLOPs per item are fixed per benchmark and
#: TFLOP/s is what "% of peak" divides
_DETAIL_COLUMNS = ("device", "time / item", "GFLOP / item", "TFLOP/s")


def _rows_table(report: Mapping[str, Any], compact: bool) -> list[str]:
    """The table of all rows. ``compact``: without :data:`_DETAIL_COLUMNS`, names and variants that may wrap at
    their '_' and '+', and each row's notes as numbers into a list under the table (equal notes, one number)."""
    header = ["benchmark", "variant", "device", "precision", "batch", "throughput", "× reference", "time / item",
              "peak memory", "GFLOP / item", "TFLOP/s", "% of peak", "notes"]
    keep = [i for i, h in enumerate(header) if not (compact and h in _DETAIL_COLUMNS)]
    lines = ["| " + " | ".join(header[i] for i in keep) + " |", "|" + "---|" * len(keep)]
    numbered: dict[str, int] = {}
    for r in report.get("results", []):
        flops = r.get("flops_per_item")
        frac = r.get("fraction_of_peak")
        notes = r.get("notes", [])
        cells = [
            r["name"].replace("_", "_\u200b") if compact else r["name"],  # may wrap after '_' (zero-width space)
            r["variant"].replace("+", " + ") if compact else r["variant"],
            "GPU" if str(r.get("device", "")).startswith("cuda") else "CPU",
            _fmt(r.get("precision")), _fmt(r.get("batch")),
            f"{_fmt(r.get('throughput'))} {r.get('throughput_unit') or ''}".strip(),
            "–" if r.get("speedup") is None else f"{r['speedup']:.2f}×",
            _fmt_time(r.get("time_per_item_s")), _fmt_memory(r), "–" if not flops else f"{flops / 1e9:,.1f}",
            _fmt(r.get("achieved_tflops")), "–" if frac is None else f"{100 * frac:.1f} %",
            ", ".join(str(numbered.setdefault(n, len(numbered) + 1)) for n in notes) if compact else "; ".join(notes),
        ]
        lines.append("| " + " | ".join(str(cells[i]).replace("|", "/") for i in keep) + " |")
    if numbered:
        lines += ["", "Notes of the rows:", ""] + [f"{i}. {n}" for n, i in numbered.items()]
    return lines


def _attention_lines(report: Mapping[str, Any]) -> list[str]:
    """The SDPA kernel of the fast path's attention blocks on this device (:mod:`ssl4sar.bench.attention`)."""
    from ssl4sar.bench.attention import backends_line

    rec = report.get("attention_backends")
    if not rec:
        return []
    if "error" in rec:
        return [f"Attention kernels of the fast path: not determined ({rec['error']}).", ""]
    return [f"Attention kernels of the fast path (PyTorch's choice per window-attention block): {backends_line(rec)}.",
            ""]


def render_markdown(report: Mapping[str, Any], *, heading: bool = True, compact: bool = False) -> str:
    """The report as markdown: heading with device and mode (unless ``heading`` is false), environment, the ratio
    table, the accuracy of the fast path, the table of all rows, notes and failures. ``compact`` fits it into a
    book's page: section titles as bold lines and a narrower table (:func:`_rows_table`)."""
    env = report.get("environment", {})
    lines = [f"# ssl4sar benchmarks — {env.get('device_name', env.get('device', '?'))}", ""] if heading else []
    lines.append(f"Mode **{report.get('mode')}**, preset **{report.get('preset')}**"
                 + ("" if report.get("paper_model") else " (not the paper model)") + f", {report.get('created', '')}.")
    lines.append("")
    keys = ("torch", "timm", "python", "cuda", "cudnn", "device_name", "device_memory_gb", "cpu_model", "cpu_count",
            "cpu_usable", "torch_threads", "cpu_capability", "cpu_native_bf16", "git_commit", "load_average")
    env_items = [f"{k} {_fmt(env[k]) if not isinstance(env[k], list) else ', '.join(f'{x:.2f}' for x in env[k])}"
                 for k in keys if env.get(k) is not None]
    lines += ["Environment: " + "; ".join(env_items) + ".", ""]
    lines += _attention_lines(report)
    lines += _ratio_lines(report, compact)
    lines += _accuracy_lines(report, compact)
    lines += _rows_table(report, compact)
    lines.append("")
    for n in report.get("notes", []):
        lines.append(f"- {n}")
    for f in report.get("failed", []):
        lines.append(f"- **failed** {f['name']}/{f['variant']}: {f['error']}")
    for sk in report.get("skipped", []):
        lines.append(f"- skipped {sk['name']}/{sk['variant']}: {sk['reason']}")
    if report.get("total_wall_s") is not None:
        lines.append(f"- total wall time {report['total_wall_s']:.0f} s")
    return "\n".join(lines) + "\n"


def find_reports(folder: str | Path | None) -> list[tuple[str, Path]]:
    """The benchmark reports committed under ``folder``, as (label, path) sorted by label: ``<machine>.json`` files
    at the top and ``bench.json`` files in sub-folders (a GPU session's folder, one sub-folder per batch size),
    labelled by their path relative to ``folder`` without ``.json`` / ``/bench.json``. Missing folder: none."""
    if folder is None or not Path(folder).is_dir():
        return []
    root = Path(folder)
    found = [(p.stem, p) for p in root.glob("*.json")]
    found += [(p.parent.relative_to(root).as_posix(), p) for p in root.glob("*/**/bench.json")]
    return sorted(found)


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a ``bench.json`` written by :func:`ssl4sar.bench.run_benchmarks`; :class:`DataError` if it is not one.
    Reports of older schemas are read too (:data:`_OLD_SCHEMAS`): schema 1 has no ``ratios``, schema 2 none for
    the pretraining steps."""
    p = Path(path)
    if not p.is_file():
        raise DataError(p, "benchmark report not found", "run  python -m ssl4sar.bench --out <folder>  first")
    try:
        report = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(p, f"not a JSON file: {exc}", "re-run the benchmark") from exc
    schema = report.get("schema") if isinstance(report, dict) else None
    if schema not in (SCHEMA, *_OLD_SCHEMAS):
        raise DataError(p, f"not an ssl4sar benchmark report (schema {schema!r}, expected {SCHEMA!r})",
                        "re-run  python -m ssl4sar.bench")
    for key in ("results", "environment"):
        if key not in report:
            raise DataError(p, f"benchmark report without {key!r}", "re-run  python -m ssl4sar.bench")
    bad = [i for i, r in enumerate(report["results"])
           if not isinstance(r, dict) or not {"name", "variant", "throughput"} <= set(r)]
    if bad:
        raise DataError(p, f"result rows {bad[:5]} lack name / variant / throughput")
    if schema == _FUSED_PRETRAINING_REFERENCE:
        _withdraw_pretraining_ratios(report)
    # ratios are derived from the rows: recomputed, so that reports written before a ratio field existed show it too
    try:
        report["ratios"] = ratios_of(report) if schema != "ssl4sar-bench/1" else []
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise DataError(p, f"cannot derive the fast/reference ratios from the result rows ({exc!r})",
                        "re-run  python -m ssl4sar.bench") from exc
    return report


def _withdraw_pretraining_ratios(report: dict[str, Any]) -> None:
    """Mark the pretraining rows of a schema-2 report: their reference path ran fused attention (see
    :data:`_OLD_SCHEMAS`), so they carry no ratio; the rows and their throughputs stay."""
    rows = [r for r in report["results"] if r.get("name") == "pretrain_step" and r.get("path")]
    for r in rows:
        r["speedup"] = None
        if r["path"] == "reference":
            r.setdefault("notes", []).append("ran fused attention, not the official code's")
    if rows:
        report.setdefault("notes", []).append(
            "Pretraining ratios left out: in this report (schema 2) the reference path of the pretraining steps ran "
            "fused attention, not timm's, so it was not the official code; re-run the benchmark for them.")


def results_frame(report: Mapping[str, Any]) -> Any:
    """The result rows as a ``pandas.DataFrame`` (one row per benchmark row; ``details`` dropped)."""
    import pandas as pd

    df = pd.DataFrame([{k: v for k, v in r.items() if k != "details"} for r in report.get("results", [])])
    if "notes" in df:
        df["notes"] = df["notes"].map(lambda n: "; ".join(n) if isinstance(n, list) else n)
    return df


def ratios_frame(report: Mapping[str, Any]) -> Any:
    """The report's fast/reference ratios as a ``pandas.DataFrame`` (columns of :func:`ratios_of`)."""
    import pandas as pd

    cols = ["benchmark", "case", "path", "metric", "reference", "value", "ratio", "ratio_low", "ratio_high",
            "reference_minutes_10mp", "minutes_10mp"]
    return pd.DataFrame(report.get("ratios") or [], columns=cols)


def variant_speedups(report: Mapping[str, Any]) -> Any:
    """Speed-ups over the reference path (``benchmark``, ``switch`` = the path, ``from``, ``to``, ``speedup``); the
    notebook-facing name of :func:`ratios_frame`."""
    import pandas as pd

    rows = [{"benchmark": r["benchmark"], "switch": r["path"], "from": "reference", "to": f"{r['case']}/{r['path']}",
             "speedup": r["ratio"]} for r in report.get("ratios") or []]
    return pd.DataFrame(rows, columns=["benchmark", "switch", "from", "to", "speedup"])


def bar_chart(report: Mapping[str, Any], title: str | None = None) -> Any:
    """Speed over the reference path, one panel per benchmark (its paths as bars; 1 = the reference). Reports without
    ratios show throughput bars instead. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    ratios = report.get("ratios") or []
    if ratios:
        items = [(r["benchmark"] + ("" if r["benchmark"] != "pretrain_step" else f" {r['case']}"), r["path"],
                  r["ratio"]) for r in ratios]
        unit = "× the reference path (same run)"
    else:
        items = [(r["name"], r["variant"], r["throughput"]) for r in report.get("results", [])
                 if r.get("throughput") and r["name"] not in ("matmul_peak", "accuracy")]
        unit = "throughput"
    groups = list(dict.fromkeys(g for g, _, _ in items))
    if not groups:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.text(0.5, 0.5, "no results", ha="center", va="center")
        ax.set_axis_off()
        return fig
    heights = [0.4 * sum(g == name for g, _, _ in items) + 0.7 for name in groups]
    fig, axes = plt.subplots(len(groups), 1, figsize=(8, sum(heights) + 0.6), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for a, name in zip(axes[:, 0], groups):
        sub = [(label, v) for g, label, v in items if g == name]
        a.barh(range(len(sub)), [v for _, v in sub], color="tab:blue")
        a.set_yticks(range(len(sub)), [label for label, _ in sub], fontsize=8)
        a.invert_yaxis()
        if ratios:
            a.axvline(1.0, color="0.3", lw=0.8, ls="--", zorder=3)  # the reference path
        a.set_title(name, fontsize=9, loc="left")
        a.set_xlabel(unit, fontsize=8)
        for y, (_, v) in enumerate(sub):
            a.text(v, y, f" {v:.3g}" + ("×" if ratios else ""), va="center", fontsize=8)
        a.margins(x=0.25)
    env = report.get("environment", {})
    fig.suptitle(title or f"{env.get('device_name', '')} — preset {report.get('preset')}, {report.get('mode')} mode",
                 fontsize=10)
    fig.tight_layout()
    return fig


#: display formats of the ratio columns (:func:`ratios_frame`)
RATIO_FORMATS = {"reference": "{:.3g}", "value": "{:.3g}", "ratio": "{:.2f}×", "ratio_low": "{:.2f}×",
                 "ratio_high": "{:.2f}×", "reference_minutes_10mp": "{:.3g}", "minutes_10mp": "{:.3g}"}


def styled_ratios(report: Mapping[str, Any]) -> Any:
    """:func:`ratios_frame` formatted for a page (3 significant digits, ratios as ``1.23×``, no index); ``None``
    when the report has no reference/fast pair."""
    ratios = ratios_frame(report)
    if ratios.empty:
        return None
    return ratios.style.format(RATIO_FORMATS, na_rep="–").hide(axis="index")


def environment_line(report: Mapping[str, Any]) -> str:
    """One markdown line: device, torch / timm versions, CPU cores and threads, mode, preset (and a warning when the
    network is not the paper's)."""
    env = report.get("environment", {})
    return (f"**Device:** {env.get('device_name')} · torch {env.get('torch')} · timm {env.get('timm')} · "
            f"{env.get('cpu_usable')} usable CPU cores, {env.get('torch_threads')} torch threads · "
            f"mode **{report.get('mode')}** · preset **{report.get('preset')}**"
            + ("" if report.get("paper_model") else " — *not the paper model: reduced sizes everywhere*"))


def report_header(name: str, report: Mapping[str, Any]) -> str:
    """Markdown heading and provenance of a committed report: device, torch, CUDA or CPU cores, mode, preset, date,
    and the matmul peak that "% of peak" refers to."""
    env = report.get("environment", {})
    peak = report.get("peak") or {}
    return (f"### {name}\n\nMeasured on **{env.get('device_name')}**, torch {env.get('torch')}"
            + (f", CUDA {env.get('cuda')}" if env.get("cuda") else f", {env.get('cpu_usable')} usable CPU cores")
            + f", {report.get('mode')} mode, preset **{report.get('preset')}**, {str(report.get('created', ''))[:10]}."
            + (f" % of peak is relative to the measured {peak.get('dtype', '')} matmul peak of "
               f"{peak['tflops']:.2f} TFLOP/s." if peak.get("tflops") else ""))


def training_time_table(report: Mapping[str, Any], samples_per_epoch: int, epochs: int) -> Any:
    """Duration of a fine-tuning run on one such device from the measured ``finetune_step`` throughput, per path:
    ``samples/s``, ``hours / epoch`` (``samples_per_epoch`` samples) and ``days / <epochs> epochs``. Empty when the
    report has no fine-tuning row."""
    import pandas as pd

    rows = []
    for r in report.get("results", []):
        if r["name"] == "finetune_step" and r.get("throughput"):
            hours = samples_per_epoch / r["throughput"] / 3600
            rows.append({"variant": r["variant"], "samples/s": r["throughput"], "hours / epoch": hours,
                         f"days / {epochs} epochs": hours * epochs / 24})
    return pd.DataFrame(rows, columns=["variant", "samples/s", "hours / epoch", f"days / {epochs} epochs"])
