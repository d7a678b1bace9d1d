"""ssl4sar.parallel: what a failed job reports, how soon, and what the caller's process is left with."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import pytest

from ssl4sar.errors import ChecksumError, DataError
from ssl4sar.parallel import parallel_map

_JOBS = '''
import time
from ssl4sar.errors import DataError

def bad_file(item):
    if item == 1:
        raise DataError("/data/fronts/test/scene_front.png", "cannot decode front mask image", "re-download it")
    return item

def late_failure(item):
    if item == "fail":
        time.sleep(1)
        raise ValueError("this run failed")
    time.sleep(120)
    return item
'''


@pytest.fixture
def jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A module of job functions that spawned workers can import (they get the caller's ``sys.path``)."""
    import importlib

    (tmp_path / "parallel_jobs.py").write_text(_JOBS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module("parallel_jobs")


@pytest.mark.parametrize("error", [
    DataError("/x/a.png", "cannot decode", "re-download it"),
    DataError(None, "no scenes in the split"),
    ChecksumError(Path("/x/b.zip"), "sha256 is 00ff, expected 1234"),
])
def test_data_errors_survive_pickling(error: DataError) -> None:
    """Workers send their exceptions back pickled: the file and the problem must arrive intact."""
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert (back.path, back.problem, back.hint) == (error.path, error.problem, error.hint)


@pytest.mark.slow
def test_a_data_error_in_a_worker_reaches_the_caller_naming_the_file(jobs) -> None:
    """``evaluate --processes 2`` on a corrupt front file ended in BrokenProcessPool, the file's name lost."""
    with pytest.raises(DataError, match="scene_front.png: cannot decode front mask image") as info:
        parallel_map(jobs.bad_file, [0, 1, 2], 2)
    assert info.value.problem == "cannot decode front mask image"


@pytest.mark.slow
def test_a_failed_run_is_reported_before_the_runs_ahead_of_it_finish(jobs) -> None:
    """The failing item comes after a two-minute run in the order of results: its error must not wait for it."""
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="this run failed"):
        parallel_map(jobs.late_failure, ["sleep", "fail"], 2)
    assert time.monotonic() - t0 < 60, "the failure waited for the run before it"
