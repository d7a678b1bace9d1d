"""``python -m ssl4sar.bench`` / ``ssl4sar bench`` / ``make bench``: arguments and entry point.

The benchmarks (:mod:`ssl4sar.bench`, torch) are imported by :func:`run`, so that ``ssl4sar bench --help`` answers
at once."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from ssl4sar.errors import DataError

__all__ = ["configure", "main", "run"]

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m ssl4sar.bench`` (and of the ``ssl4sar bench`` sub-command)."""
    parser.add_argument("--quick", action="store_true",
                        help="reference and fast path only, few rounds (minutes on a 2-core CPU); default: also the "
                             "ablations of the fast path and more rounds")
    parser.add_argument("--out", default="bench_results", help="output folder for bench.json and bench.md")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None,
                        help="run only these benchmarks: names (listed by --list), keys 'name/variant' or patterns "
                             "such as 'pretrain_step/opt*'")
    parser.add_argument("--preset", default="paper",
                        help="paper (default) | demo | smoke | preset YAML: model and sizes (smoke/demo are not the "
                             "paper model)")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="add a torch.compile path (auto: on CUDA in full mode)")
    parser.add_argument("--batch-size", type=int, default=None, help="override the training / inference batch size")
    parser.add_argument("--data", default=None, help="CaFFe root for the data-sampler benchmark (default synthetic)")
    parser.add_argument("--accuracy", nargs=2, metavar=("CKPT", "DATA"), default=None,
                        help="also measure the fast path's class-map agreement and MDE change against the reference "
                             "path with this checkpoint on the test split of this CaFFe root")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--append", action="store_true",
                        help="merge into the bench.json already in --out (same device / preset / mode)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile a fast-path fine-tuning step (torch.profiler): profile.txt in --out; "
                             "with sliding_window also its inference: profile-sliding-window.txt")
    parser.add_argument("--list", action="store_true", help="list the benchmarks that would run, then exit")


def run(args: argparse.Namespace) -> int:
    """Run the benchmarks of ``args``, write the files, show the markdown on stdout. Returns 0, 1 when a benchmark
    failed, 2 on bad arguments."""
    from ssl4sar.bench.plan import check_only, plan_benchmarks, selected
    from ssl4sar.bench.report import render_markdown
    from ssl4sar.bench.runner import resolve_compile, run_benchmarks
    from ssl4sar.config import load_preset
    from ssl4sar.io import ensure_writable_dir
    from ssl4sar.models.fast import resolve_device

    try:
        if args.list:
            dev = resolve_device(args.device)
            cfg = load_preset(args.preset)
            plan = plan_benchmarks(cfg, device=dev, quick=args.quick,
                                   compile=resolve_compile(args.compile, dev, args.quick), batch=args.batch_size,
                                   preset_name=str(cfg.get("name")), accuracy=args.accuracy)
            check_only(plan, args.only)
            lines = [f"{b.key}" + (f"  [{', '.join(p.name for p in b.paths)}]" if hasattr(b, "paths") else "")
                     for b in plan if selected(b.key, args.only)]
            sys.stdout.write("\n".join(lines) + "\n")
            return 0
        ensure_writable_dir(args.out, "benchmark output folder")  # before minutes of measurements
        report = run_benchmarks(args.out, quick=args.quick, device=args.device, only=args.only, preset=args.preset,
                                compile=args.compile, batch=args.batch_size, data_dir=args.data, seed=args.seed,
                                append=args.append, accuracy=tuple(args.accuracy) if args.accuracy else None)
        if args.profile:
            _profile(args, report)
    except (ValueError, DataError) as exc:
        log.error("%s", exc)
        return 2
    sys.stdout.write(render_markdown(report))
    sys.stdout.write(f"\nwrote {Path(args.out) / 'bench.json'} and {Path(args.out) / 'bench.md'}\n")
    return 1 if report["failed"] else 0


def _profile(args: argparse.Namespace, report: dict) -> None:
    """Profile a fast-path fine-tuning step, then (when the report has a sliding-window row of the fast path) that
    inference on the same scene, then the compiled step when ``--compile`` asks for it; each table is written as
    soon as it is measured (compiling takes minutes, so a time limit cuts only the last one): ``--out/profile.txt``,
    ``profile-sliding-window.txt``, ``profile-compile.txt``."""
    from ssl4sar.io import write_text_atomic

    device = report["environment"]["device"]
    for name, what, unit, prof in _profiles(report, device, args.batch_size):
        out = Path(args.out) / name
        write_text_atomic(out, profile_header(what, unit, device, prof) + prof["table"] + "\n")
        log.info("wrote %s", out)


def _profiles(report: dict, device: str, batch_size: int | None) -> Iterator[tuple[str, str, str, dict]]:
    """``(file name, what ran, unit of one step, profile)`` of each profile of :func:`_profile`, measured lazily."""
    from ssl4sar.bench.profile import profile_fast_finetune, profile_fast_sliding_window

    preset, model = report["preset"], dict(report["model"])
    batch = batch_size or (16 if str(device).startswith("cuda") else 2)  # the plan's training batch

    def finetune(compiled: bool) -> tuple[str, str, str, dict]:
        prof = profile_fast_finetune(model, device, batch, compile=compiled)
        what = f"fast-path{' compiled' if compiled else ''} fine-tuning step, preset {preset}, batch {batch}"
        return ("profile-compile.txt" if compiled else "profile.txt"), what, "step", prof

    yield finetune(compiled=False)
    window = next((r["details"] for r in report["results"]
                   if r.get("name") == "sliding_window" and r.get("path") == "fast"), None)
    if window is not None:
        prof = profile_fast_sliding_window(model, device, scene_side=int(window["scene_h"]),
                                           stride=int(window["stride"]), batch=int(window["batch_size"]))
        what = (f"fast-path sliding-window inference, preset {preset}, {prof['n_windows']} windows (random "
                f"{prof['scene_side']} px scene, stride {prof['stride']} px, batch {prof['batch_size']}, one forward "
                "pass at a time)")
        yield "profile-sliding-window.txt", what, "scene", prof
    if report.get("compile"):
        yield finetune(compiled=True)


def profile_header(what: str, unit: str, device: str, prof: dict) -> str:
    """The first lines of a profile table: what ran, operator self time and wall time per ``unit`` and, on a GPU,
    the share of the wall time that the device spent in kernels (low: the step waits on the host)."""
    line = (f"{what}, {device}: {prof['profiled_s']:.3g} s of operator self time per {unit}, "
            f"{prof['wall_s']:.3g} s wall under the profiler")
    if str(device).startswith("cuda") and prof["wall_s"] > 0:
        line += f" (kernels busy {100 * prof['profiled_s'] / prof['wall_s']:.0f} % of the wall time)"
    return line + "\n\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ssl4sar.bench``."""
    parser = argparse.ArgumentParser(prog="python -m ssl4sar.bench",
                                     description="throughput, memory and fast/reference ratios of this machine")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    configure(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose == 0 else logging.DEBUG,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    return run(args)
