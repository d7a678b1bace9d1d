"""tools/check_disk.sh, the free-space check that .ci/run makes before the test suite fills the disk."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "check_disk.sh"


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30, check=False)


def _free_gib(path: Path) -> int:
    return shutil.disk_usage(path).free // 2**30


def test_enough_space_passes_and_reports_it(tmp_path: Path) -> None:
    proc = _check("0", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    reported = re.search(rf"free disk space at {re.escape(str(tmp_path))}: (\d+) GiB", proc.stdout)
    assert reported, proc.stdout
    assert abs(int(reported[1]) - _free_gib(tmp_path)) <= 1  # other processes may write in between


def test_too_little_space_fails_naming_the_path(tmp_path: Path) -> None:
    need = _free_gib(tmp_path) + 100
    proc = _check(str(need), str(ROOT), str(tmp_path))
    assert proc.returncode == 1
    assert re.search(rf"error: {re.escape(str(tmp_path))} has \d+ GiB free, less than the {need} GiB", proc.stderr)


@pytest.mark.parametrize("args", [(), ("5",), ("many", ".")])
def test_missing_or_bad_arguments_are_a_usage_error(args: tuple[str, ...]) -> None:
    proc = _check(*args)
    assert proc.returncode == 2
    assert "usage" in proc.stderr


def test_ci_checks_the_disk_before_the_tests() -> None:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    check = next(i for i, line in enumerate(lines) if "tools/check_disk.sh" in line)
    assert check < lines.index("make test")
