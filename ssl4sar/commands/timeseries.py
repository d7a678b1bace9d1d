"""``ssl4sar timeseries``: front-position time series from predicted fronts
(:func:`ssl4sar.timeseries.front_time_series`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ssl4sar.errors import DataError
from ssl4sar.io import disk_full_raises, ensure_writable_dir

__all__ = ["configure", "run"]

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ssl4sar timeseries``."""
    parser.add_argument("fronts", nargs="+", type=Path, metavar="FRONT",
                        help="front GeoJSONs (ssl4sar predict output or any lines), front-mask GeoTIFFs, or "
                             "folders of ssl4sar predict output")
    ref = parser.add_mutually_exclusive_group(required=True)
    ref.add_argument("--box", type=Path, help="reference box GeoJSON (4-corner Polygon, first edge upstream)")
    ref.add_argument("--centreline", "--centerline", type=Path, dest="centreline",
                     help="centreline GeoJSON (LineString drawn from upstream to downstream)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--flow-direction", type=float, nargs=2, default=None, metavar=("DX", "DY"),
                        help="flow direction in the box CRS (chooses the upstream edge)")
    parser.add_argument("--transects", type=int, default=200, help="number of box transects")
    parser.add_argument("--min-coverage", type=float, default=0.5,
                        help="minimum fraction of box transects that must cross the front")
    parser.add_argument("--truth", type=Path, default=None,
                        help="CSV with date,position_m to compare with (e.g. the synthetic truth.csv)")


def run(args: argparse.Namespace) -> int:
    """``ssl4sar timeseries``: writes front_positions.csv and front_positions.png; returns 0, or 1 with a one-line
    error for bad input (an unreadable or empty front file, or a bad ``--truth`` table, stops the run, naming it) or an
    unwritable ``--out``."""
    try:
        with disk_full_raises(args.out, "the time series", "free some space, then run the same command"):
            return _run(args)
    except (DataError, ValueError) as exc:
        log.error("%s", exc)
        return 1


def _run(args: argparse.Namespace) -> int:
    from ssl4sar.timeseries import (
        check_position_settings,
        compare_to_truth,
        front_time_series,
        read_truth_table,
        write_time_series,
    )
    from ssl4sar.viz import plot_front_positions, save_figure

    check_position_settings(n_transects=args.transects, min_coverage=args.min_coverage,
                            flow_direction=args.flow_direction)
    truth = read_truth_table(args.truth) if args.truth else None  # a bad table stops the run before any output
    out = ensure_writable_dir(args.out)
    series = front_time_series(args.fronts, box=args.box, centreline=args.centreline,
                               flow_direction=args.flow_direction, n_transects=args.transects,
                               min_coverage=args.min_coverage)
    csv_path = write_time_series(series, out / "front_positions.csv")
    if truth is not None:
        stats = compare_to_truth(series, truth)
        if stats["n"]:
            log.info("against %s: RMSE %.1f m, bias %.1f m, max %.1f m over %d dates", args.truth,
                     stats["rmse_m"], stats["bias_m"], stats["max_abs_m"], stats["n"])
        else:
            log.warning("%s: none of its %d dates is the date of a front with a position: nothing compared",
                        args.truth, len(truth))
    method = "box" if args.box else "centreline"
    fig = plot_front_positions(series, truth=truth, title=f"front position ({method} method)")
    save_figure(fig, out / "front_positions.png")
    log.info("wrote %s (%d dates)", csv_path, len(series))
    return 0
