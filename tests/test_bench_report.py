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
