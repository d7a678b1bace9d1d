"""The book's protocol tables: seeds per initialisation, tests, ensemble choice, bootstrap interval, layout."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ssl4sar import experiments
from ssl4sar.book import WorkLayout, build_info, build_info_table, pin_threads, pinned_threads


def runs_table() -> pd.DataFrame:
    rows = []
    mdes = {"scratch": [400.0, 420.0, 450.0], "optsimmim": [300.0, 310.0, 330.0],
            "opttranslator": [350.0, 250.0, 260.0]}
    val_found = {"scratch": [2, 3, 3], "optsimmim": [4, 4, 3], "opttranslator": [4, 4, 4]}
    for init, values in mdes.items():
        for seed, (mde, vf) in enumerate(zip(values, val_found[init])):
            rows.append({"init": init, "seed": seed, "val_mde_m": mde - 20, "val_fronts_found": vf, "val_images": 4,
                         "best_epoch": 3, "test_mde_m": mde, "fronts_found": 30, "test_images": 32,
                         "mean_iou": 0.7, "seconds": 1.0,
                         "checkpoint": f"work_dir/finetune/{init}/seed{seed}/best_mde.pt"})
    return pd.DataFrame(rows, columns=list(experiments.RUN_COLUMNS))


def test_seed_summary_tests_and_choices() -> None:
    runs = runs_table()
    summary = experiments.seed_summary(runs)
    assert summary.loc["scratch", "test MDE (m)"] == (
        f"{np.mean([400, 420, 450]):.0f} ± {np.std([400, 420, 450], ddof=1):.0f}")
    assert summary.loc["optsimmim", "seeds"] == 3 and summary.loc["optsimmim", "fronts found"] == "30.0 ± 0.0 of 32"
    tests = experiments.compare_initialisations(runs, n_resamples=99)
    assert [tuple(r) for r in tests[["baseline", "opponent"]].to_numpy()] == [
        ("scratch", "optsimmim"), ("scratch", "opttranslator"), ("optsimmim", "opttranslator")]
    # every scratch run is worse than every OptSimMIM run: the smallest one-sided p with 3 vs 3, 1/C(6,3)
    assert tests.loc[0, "mwu_p"] == pytest.approx(1 / math.comb(6, 3))
    # the ensemble's initialisation: most validation fronts, then validation MDE (test MDEs are not used)
    assert experiments.choose_ensemble_init(runs) == "opttranslator"
    best = experiments.best_single_run(runs)
    assert (best["init"], best["seed"]) == ("opttranslator", 1)
    # too few runs with a front: no test, an empty table with the shown columns
    few = runs[runs["seed"] == 0]
    assert experiments.compare_initialisations(few).empty


def test_bootstrap_interval_of_the_pooled_mde() -> None:
    per_image = pd.DataFrame({"sum_m": [100.0, 400.0, 0.0, 900.0], "n_distances": [1, 2, 0, 3]})
    lo, hi = experiments.bootstrap_pooled_mde(per_image, n_bootstrap=500, seed=1)
    pooled = 1400.0 / 6
    assert lo <= pooled <= hi and 100.0 <= lo < hi <= 300.0
    assert experiments.bootstrap_pooled_mde(per_image, n_bootstrap=500, seed=1) == (lo, hi)
    one = pd.DataFrame({"sum_m": [0.0, 250.0, 0.0], "n_distances": [0, 5, 0]})  # one scene with a front
    assert experiments.bootstrap_pooled_mde(one, n_bootstrap=200) == (50.0, 50.0)
    none = pd.DataFrame({"sum_m": [0.0, 0.0], "n_distances": [0, 0]})
    assert all(math.isnan(v) for v in experiments.bootstrap_pooled_mde(none))


def test_ensemble_findings_and_breakdown_table() -> None:
    summary = pd.DataFrame([
        {"model": "optsimmim seed 0", "init": "optsimmim", "members": 1, "tta": False, "test_mde_m": 300.0,
         "fronts_found": 6, "test_images": 8},
        {"model": "optsimmim seed 1", "init": "optsimmim", "members": 1, "tta": False, "test_mde_m": 320.0,
         "fronts_found": 4, "test_images": 8},
        {"model": "ensemble of 2 optsimmim", "init": "optsimmim", "members": 2, "tta": False,
         "test_mde_m": float("nan"), "fronts_found": 3, "test_images": 8}])
    text = experiments.ensemble_findings(summary)
    assert "5.0 of 8" in text and "no MDE" in text and "fewer fronts than its average member" in text
    b = pd.DataFrame({"group_type": ["season", "season"], "group_value": ["summer", "winter"],
                      "mde_m": [120.4, float("nan")], "missing_fronts": [1, 2], "images": [3, 2]})
    table = experiments.breakdown_table({"a": b}, "season")
    assert table.loc["summer", "a"] == "120 (1)" and table.loc["winter", "a"] == "— (2)"
    assert table["images"].tolist() == [3, 2]


def test_work_layout_names_and_relative_paths(tmp_path: Path) -> None:
    layout = WorkLayout(tmp_path)
    assert layout.finetune_run("optsimmim", 2) == tmp_path / "finetune" / "optsimmim" / "seed2"
    shown = layout.relative(layout.finetune_run("scratch", 0) / "best_mde.pt")
    assert shown == "work_dir/finetune/scratch/seed0/best_mde.pt"
    assert experiments.checkpoint_path(layout, shown) == layout.finetune_run("scratch", 0) / "best_mde.pt"
    assert layout.relative("/elsewhere/x.pt") == "/elsewhere/x.pt"
    assert "not recorded" in build_info_table(layout)["value"].iloc[0]


def test_build_info_records_threads_and_versions() -> None:
    import torch

    before = torch.get_num_threads()
    try:
        settings = pin_threads(1)
        assert settings["torch_threads"] == 1 and settings["OMP_NUM_THREADS"] == "1"
        info = build_info("smoke", 0)
        assert info["threads"]["torch_threads"] == 1 and info["packages"]["torch"] == torch.__version__.split("+")[0]
    finally:
        torch.set_num_threads(before)


def test_pinned_threads_restores_the_earlier_settings(monkeypatch) -> None:
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    other = 1 if before != 1 else 2
    with pinned_threads(other) as settings:
        assert torch.get_num_threads() == other == settings["torch_threads"]
        assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == str(other)
    assert torch.get_num_threads() == before
    assert os.environ["OMP_NUM_THREADS"] == "3" and "MKL_NUM_THREADS" not in os.environ


def test_filter_findings_names_the_fronts_the_filter_removed() -> None:
    d = {"ensemble": {"fronts_found": 1, "fronts_found_without_filter": 3, "test_images": 3},
         "ensemble_tta": {"fronts_found": 2, "fronts_found_without_filter": 2, "test_images": 3}}
    text = experiments.filter_findings(d, 750.0)
    assert "removes the only front of 2 of 3 scenes" in text
    assert "`ensemble_tta`: the filter removes no scene's front; the 1 scenes" in text


def test_protocol_device_runs_side_by_side_on_cpu_and_one_by_one_on_a_gpu(monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert experiments.protocol_device("auto", 2) == ("cpu", 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert experiments.protocol_device("auto", 2) == ("cuda", 1)  # one GPU: runs one after the other


@pytest.mark.parametrize(("workers", "gpu_workers", "named"), [(0, 1, "workers"), (-1, 1, "workers"),
                                                               (1, 0, "gpu_workers")])
def test_protocol_device_refuses_fewer_than_one_worker(workers: int, gpu_workers: int, named: str) -> None:
    from ssl4sar.errors import SettingError

    # Refused whatever the device: a value meant for the other device is still a mistake (0 was rounded up to 1).
    with pytest.raises(SettingError, match=rf"^{named} must be at least 1, got {min(workers, gpu_workers)}$"):
        experiments.protocol_device("cpu", workers, gpu_workers)


def test_a_protocol_run_trains_on_the_gpu_it_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `device="cuda:1"` must fine-tune on GPU 1 (where the run is then evaluated), not on Lightning's first GPU
    import ssl4sar.finetune

    seen: dict = {}

    class Stop(Exception):
        pass

    def fake_finetune(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(ssl4sar.finetune, "finetune", fake_finetune)
    spec = experiments.RunSpec("scratch", "scratch", 0, tmp_path / "run")
    for device, accelerator, devices in (("cuda:1", "gpu", [1]), ("cuda", "gpu", 1), ("cpu", "cpu", 1)):
        with pytest.raises(Stop):
            experiments.run_one({}, tmp_path, spec, device=device)
        assert (seen["accelerator"], seen["devices"]) == (accelerator, devices)


def test_model_evaluations_and_the_ensemble_summary(tmp_path: Path) -> None:
    layout = WorkLayout(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"evaluations of chapter 5 not found in work_dir/evaluate "
                                                r"\(available: none\)"):
        experiments.model_evaluations(layout)
    for name in ("ensemble", "ensemble_tta", "scratch_seed0", "broken"):
        folder = layout.evaluation(name)
        (folder / "fronts").mkdir(parents=True)
        if name != "broken":
            (folder / "summary.json").write_text("{}")
    assert experiments.model_evaluations(layout) == ["ensemble_tta", "ensemble", "scratch_seed0"]
    assert experiments.model_evaluations(layout, ["ensemble"]) == ["ensemble"]
    with pytest.raises(FileNotFoundError, match=r"evaluations \['broken'\] not found"):
        experiments.model_evaluations(layout, ["ensemble", "broken"])
    assert experiments.ensemble_summary(layout) is None
    pd.DataFrame({"model": ["scratch seed 0", "ensemble of 2 scratch", "ensemble of 2 scratch + TTA"],
                  "init": ["scratch"] * 3, "members": [1, 2, 2], "tta": [False, False, True],
                  "test_mde_m": [512.34, 401.26, 388.04], "ci_low_m": [400.0, 350.55, 340.0],
                  "ci_high_m": [600.0, 450.0, 430.0], "fronts_found": [2, 3, 3], "test_images": [3, 3, 3],
                  "mean_iou": [0.5, 0.6, 0.61]}).to_csv(layout.evaluate_summary_csv, index=False)
    table = experiments.ensemble_summary(layout)
    assert list(table.index) == ["ensemble of 2 scratch", "ensemble of 2 scratch + TTA"]
    assert list(table.columns) == ["test_mde_m", "ci_low_m", "ci_high_m", "fronts_found", "test_images"]
    assert table["test_mde_m"].tolist() == [401.3, 388.0] and table["ci_low_m"].tolist() == [350.6, 340.0]


def test_summary_table_fits_the_page_with_interval_and_fronts_as_text() -> None:
    from ssl4sar.experiments import summary_table

    summary = pd.DataFrame({"model": ["scratch seed 0", "ensemble of 3 optsimmim + TTA"],
                            "init": ["scratch", "optsimmim"],
                            "members": [1, 3], "tta": [False, True], "test_mde_m": [261.89, 217.17],
                            "ci_low_m": [198.5, float("nan")], "ci_high_m": [316.75, float("nan")],
                            "fronts_found": [7, 30], "test_images": [32, 32], "mean_iou": [0.50388, 0.5069]})
    table = summary_table(summary)
    assert list(table.columns) == ["test MDE (m)", "95 % CI (m)", "fronts found", "mean IoU"]
    assert table.loc["scratch seed 0"].tolist() == [261.9, "198–317", "7 of 32", 0.504]
    assert table.loc["ensemble of 3 optsimmim + TTA", "95 % CI (m)"] == "–"


# ----------------------------------------------------------------------------------------------- parallel runs
_JOBS = '''
import os, time

def sleeper(item, out_dir):
    if item == "fail":
        time.sleep(2)   # let the other job start first
        raise ValueError("this run failed")
    with open(os.path.join(out_dir, f"{os.getpid()}.pid"), "w") as f:
        f.write(str(item))
    time.sleep(300)
    return item
'''


def _alive(pid: int) -> bool:
    """Running (a zombie that nobody reaped yet counts as ended)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = [line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State:")]
    except OSError:
        return False
    return not (state and state[0].split()[1] in ("Z", "X"))


def _wait_for(predicate, seconds: float) -> bool:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def _pids(folder: Path) -> list[int]:
    return [int(p.stem) for p in folder.glob("*.pid")]


@pytest.mark.slow
def test_parallel_runs_end_when_one_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed run stops the others instead of waiting minutes for them (the protocol's runs train for minutes)."""
    import time

    (tmp_path / "jobs_failing.py").write_text(_JOBS)
    monkeypatch.syspath_prepend(str(tmp_path))
    from jobs_failing import sleeper  # type: ignore[import-not-found]

    t0 = time.monotonic()
    with pytest.raises(ValueError, match="this run failed"):
        experiments.parallel_map(sleeper, ["fail", "sleep"], 2, out_dir=str(tmp_path))
    assert time.monotonic() - t0 < 120   # the sleeper would take 300 s
    pids = _pids(tmp_path)
    assert len(pids) == 1 and not _alive(pids[0])


@pytest.mark.slow
def test_parallel_runs_do_not_outlive_a_killed_parent(tmp_path: Path) -> None:
    """``timeout`` / ``kill -9`` of the protocol once left its fine-tuning processes running (H200, load 9)."""
    import os
    import signal
    import subprocess
    import sys

    (tmp_path / "jobs_killed.py").write_text(_JOBS)
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from jobs_killed import sleeper; "
              "from ssl4sar.experiments import parallel_map; parallel_map(sleeper, [1, 2], 2, out_dir=sys.argv[1])")
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)])
    try:
        assert _wait_for(lambda: len(_pids(tmp_path)) == 2, 120), "the two runs did not start"
        os.kill(parent.pid, signal.SIGKILL)   # no handler, no cleanup: only the kernel can tell the workers
        parent.wait(timeout=30)
        pids = _pids(tmp_path)
        assert _wait_for(lambda: not any(_alive(p) for p in pids), 30), "workers outlived their killed parent"
    finally:
        parent.kill()
        for p in _pids(tmp_path):
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_an_interrupted_run_resumed_gives_the_row_of_an_uninterrupted_one(smoke_data: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``protocol --resume`` after a kill: the run goes on from its last checkpoint instead of starting again (it
    was deleted and trained from the start, so a kill late in a paper-preset protocol lost every finished run)."""
    from lightning.pytorch.callbacks import Callback

    import ssl4sar.finetune
    from ssl4sar.config import load_preset

    class CountSteps(Callback):
        steps = 0

        def on_train_batch_end(self, *args: object) -> None:
            CountSteps.steps += 1

    real_finetune = ssl4sar.finetune.finetune

    def counted_finetune(*args: object, **kwargs: object) -> object:
        CountSteps.steps = 0
        return real_finetune(*args, callbacks=[CountSteps()], **kwargs)

    monkeypatch.setattr(ssl4sar.finetune, "finetune", counted_finetune)
    cfg = load_preset("smoke")
    straight = experiments.run_one(cfg, smoke_data, experiments.RunSpec("scratch", "scratch", 0, tmp_path / "a"),
                                   threads=1)
    steps_per_epoch = CountSteps.steps // 2  # the smoke preset trains 2 epochs
    spec = experiments.RunSpec("scratch", "scratch", 0, tmp_path / "b")
    real_finetune(cfg, smoke_data, spec.out_dir, init="scratch", seed=0, max_epochs=1, progress=False,
                  accelerator="cpu", devices=1)  # the same run, killed after its first epoch
    resumed = experiments.run_one(cfg, smoke_data, spec, threads=1, resume=True)
    assert CountSteps.steps == steps_per_epoch > 0  # the second epoch only
    import torch

    from ssl4sar.models.convert import load_model

    same = [c for c in experiments.RUN_COLUMNS if c not in ("seconds", "checkpoint")]

    def assert_same_run(row: dict) -> None:
        pd.testing.assert_series_equal(pd.Series({c: row[c] for c in same}), pd.Series({c: straight[c] for c in same}))
        ours, theirs = load_model(row["checkpoint"]).state_dict(), load_model(straight["checkpoint"]).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)  # the same weights: the same training

    assert_same_run(resumed)
    metrics = pd.read_csv(spec.out_dir / "metrics.csv")
    assert list(metrics["epoch"]) == [0, 1]  # both epochs on record, the first from before the interruption
    assert_same_run(experiments.run_one(cfg, smoke_data, spec, threads=1, resume=True))
    assert CountSteps.steps == 0  # a finished run trains no further
