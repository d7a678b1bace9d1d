"""What chapter 8 shows of a benchmark report: training times, styled ratios, headers, and which report it shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssl4sar.bench import (
    SCHEMA,
    book_report,
    environment_line,
    find_reports,
    load_report,
    report_header,
    styled_ratios,
    training_time_table,
)


def _report(**extra: object) -> dict:
    report = {"schema": SCHEMA, "mode": "quick", "preset": "demo", "paper_model": False, "created": "2026-01-02T03:04",
              "environment": {"device_name": "cpu (test)", "torch": "2.x", "timm": "1.x", "cpu_usable": 2,
                              "torch_threads": 2},
              "peak": {"dtype": "float32", "tflops": 0.5},
              "results": [{"name": "finetune_step", "variant": "reference", "throughput": 4.0},
                          {"name": "finetune_step", "variant": "fast", "throughput": 10.0},
                          {"name": "sliding_window", "variant": "fast", "throughput": 3.0}],
              "ratios": [{"benchmark": "finetune_step", "case": "train", "path": "fast", "metric": "samples/s",
                          "reference": 4.0, "value": 10.0, "ratio": 2.5, "reference_minutes_10mp": None,
                          "minutes_10mp": None}]}
    report.update(extra)
    return report


def test_training_time_table_from_finetune_throughput() -> None:
    table = training_time_table(_report(), samples_per_epoch=36_000, epochs=150)
    assert list(table.columns) == ["variant", "samples/s", "hours / epoch", "days / 150 epochs"]
    assert table["variant"].tolist() == ["reference", "fast"]  # the sliding-window row is not a training step
    assert table["hours / epoch"].tolist() == pytest.approx([2.5, 1.0])  # 36 000 / 4 / 3600, 36 000 / 10 / 3600
    assert table["days / 150 epochs"].tolist() == pytest.approx([2.5 * 150 / 24, 150 / 24])
    assert training_time_table(_report(results=[]), 40_000, 150).empty


def test_styled_ratios_and_headers() -> None:
    html = styled_ratios(_report()).to_html()
    assert "2.50×" in html and "–" in html  # ratio format; missing minutes shown as a dash
    assert styled_ratios(_report(ratios=[])) is None
    line = environment_line(_report())
    assert "cpu (test)" in line and "mode **quick**" in line and "not the paper model" in line
    assert "not the paper model" not in environment_line(_report(paper_model=True))
    head = report_header("laptop", _report())
    assert head.startswith("### laptop\n\n") and "2 usable CPU cores" in head and "2026-01-02." in head
    assert "float32 matmul peak of 0.50 TFLOP/s" in head
    assert "CUDA 12.4" in report_header("gpu", _report(environment={"device_name": "H", "cuda": "12.4"}, peak=None))


def test_book_report_shows_existing_report_and_rejects_missing_one(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    out.mkdir()
    (out / "bench.json").write_text(json.dumps(_report()))
    report, path, measured = book_report(out, preset="smoke")
    assert path == out / "bench.json" and not measured and report["preset"] == "demo"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        book_report(out, preset="smoke", bench_json=tmp_path / "other" / "bench.json")


def test_find_reports_sees_top_level_files_and_session_folders(tmp_path: Path) -> None:
    # chapter 08 once listed only book/bench/*.json, so the GPU sessions' folders never reached the book
    (tmp_path / "cpu-2core.json").write_text("{}")
    (tmp_path / "h200").mkdir()
    (tmp_path / "h200" / "bench.json").write_text("{}")
    (tmp_path / "h200" / "README.md").write_text("how")
    (tmp_path / "h200-compile" / "bench-b16").mkdir(parents=True)
    (tmp_path / "h200-compile" / "bench-b16" / "bench.json").write_text("{}")
    (tmp_path / "h200-compile" / "bench-b16" / "other.json").write_text("{}")   # not a report name
    found = find_reports(tmp_path)
    assert [label for label, _ in found] == ["cpu-2core", "h200", "h200-compile/bench-b16"]
    assert found[2][1] == tmp_path / "h200-compile" / "bench-b16" / "bench.json"
    assert find_reports(tmp_path / "missing") == [] and find_reports(None) == []


def test_every_committed_book_report_loads() -> None:
    root = Path(__file__).resolve().parents[1] / "book" / "bench"
    found = find_reports(root)
    assert any(label.startswith("h200") for label, _ in found)
    for _label, path in found:
        assert load_report(path)["results"]


def _accuracy_details(**mde: object) -> dict:
    """The details of an accuracy row as bench.json holds them (json_safe wrote NaN as null)."""
    acc = {"checkpoint": "weak.pt", "split": "test", "data": "caffe", "scenes": 2, "stride": 64, "agreement": 0.99,
           "pixels": 1000, "disagreeing_px": 10, "reference_mde_m": 120.0, "fast_mde_m": 125.0,
           "mde_change_m": 5.0, "reference_missing_fronts": 0, "fast_missing_fronts": 0,
           "reference_mde_all_pieces_m": 110.0, "fast_mde_all_pieces_m": 112.0, "mde_change_all_pieces_m": 2.0,
           "paired_images": 2, "paired_reference_mde_m": 120.0, "paired_fast_mde_m": 125.0,
           "paired_mde_change_m": 5.0, "largest_mde_shares": [],
           "strides": [{"stride": 128, "windows_ratio": 0.3, "mde_m": 130.0, "mde_change_m": 10.0,
                        "paired_mde_change_m": 10.0, "paired_images": 2, "agreement": 0.98, "missing_fronts": 0}]}
    acc.update(mde)
    return acc


def test_accuracy_without_any_front_renders_dashes_after_a_round_trip(tmp_path: Path) -> None:
    """A weak model that finds no front has no MDE (NaN, written as null): the report read back from bench.json once
    crashed rendering (and with it every --append run, after bench.json was rewritten but bench.md was not)."""
    from ssl4sar.bench import render_markdown
    from ssl4sar.bench.report import json_safe, make_row

    nan = float("nan")
    none = {k: nan for k in ("reference_mde_m", "fast_mde_m", "mde_change_m", "reference_mde_all_pieces_m",
                             "fast_mde_all_pieces_m", "mde_change_all_pieces_m", "paired_reference_mde_m",
                             "paired_fast_mde_m", "paired_mde_change_m")}
    acc = _accuracy_details(**none, paired_images=0, reference_missing_fronts=2, fast_missing_fronts=2)
    acc["strides"][0].update(mde_m=nan, mde_change_m=nan, paired_mde_change_m=nan, paired_images=0)
    row = make_row("accuracy", "weak-test", acc, None)
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(json_safe(_report(results=[row], ratios=[]))))
    report = load_report(path)
    assert report["results"][0]["details"]["reference_mde_m"] is None  # what the crash came from
    text = render_markdown(report)
    assert "MDE – m (reference) vs – m (fast), change **– m**" in text
    assert "| 128 | 0.30× | – | – | – (0 img) | 98.00 % | 0 |" in text
    assert "nan" not in text.lower() and "None" not in text
    # fronts found: numbers as before
    found = render_markdown(_report(results=[make_row("accuracy", "good-test", _accuracy_details(), None)]))
    assert "MDE 120.00 m (reference) vs 125.00 m (fast), change **+5.00 m**" in found
    assert "| 128 | 0.30× | 130.00 | +10.00 | +10.00 (2 img) | 98.00 % | 0 |" in found
