"""ssl4sar as a Colab or JupyterHub user gets it: a wheel installed into a fresh virtual environment.

Builds the wheel from a copy of the sources, installs it with the ``book`` extra into a new virtual environment
under a temporary folder (not editable; dependencies come from pip's normal resolution, so pip's own
configuration and cache apply), and then, from a folder outside the repository, runs ``ssl4sar data list``
and executes chapter 1 (``notebooks/01_dataset.ipynb``, copied there alone, as Colab opens it) with papermill
on the smoke preset. Chapter 1 reads the package's data manifest and the real CaFFe patches shipped as
package data, so a file missing from the wheel fails here.

Slow (a full install of PyTorch and Jupyter Book): marker ``wheel``; ``make test-wheel`` runs it, ``.ci/run``
calls that target after ``make test``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = "01_dataset"

pytestmark = [pytest.mark.slow, pytest.mark.wheel]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    assert proc.returncode == 0, (f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                                  f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """``(bin folder of a fresh venv holding the wheel + [book], environment without this checkout)``."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "MPLBACKEND"}}
    env.update(HF_HUB_OFFLINE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", SSL4SAR_DATA=str(tmp / "data_root"))

    src = tmp / "src"   # build from a copy: nothing is written into the checkout, and only declared files ship
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "ssl4sar", src / "ssl4sar", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp / "dist"), str(src)],
         tmp, env, 600)
    wheel = next((tmp / "dist").glob("ssl4sar-*.whl"))

    venv.create(tmp / "venv", with_pip=True, clear=True)
    bin_dir = tmp / "venv" / "bin"
    _run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--progress-bar", "off", f"{wheel}[book]"],
         tmp, env, 1800)
    yield bin_dir, env
    shutil.rmtree(tmp / "venv", ignore_errors=True)   # several GB (PyTorch); pytest keeps old temp folders


def test_installed_package_is_not_this_checkout(installed, tmp_path: Path) -> None:
    bin_dir, env = installed
    out = _run([str(bin_dir / "python"), "-c", "import ssl4sar; print(ssl4sar.__file__)"], tmp_path, env, 60).stdout
    assert "site-packages" in out and str(ROOT) not in out


def test_data_list_reads_the_packaged_manifest(installed, tmp_path: Path) -> None:
    bin_dir, env = installed
    out = _run([str(bin_dir / "ssl4sar"), "data", "list"], tmp_path, env, 120).stdout
    names = [line.split()[0] for line in out.splitlines()[1:] if line.strip() and not line.startswith("data root")]
    assert names == ["caffe", "caffe-meta", "ssl4sar", "swinv2-tiny-imagenet", "synthetic-demo"]
    assert "site-packages/ssl4sar/data/data_manifest.yaml" in out


def test_chapter_notebook_runs_on_the_smoke_preset(installed, tmp_path: Path) -> None:
    bin_dir, env = installed
    notebook = tmp_path / f"{CHAPTER}.ipynb"
    shutil.copy2(ROOT / "notebooks" / notebook.name, notebook)
    executed = tmp_path / f"{CHAPTER}.out.ipynb"
    _run([str(bin_dir / "papermill"), notebook.name, executed.name, "-k", "python3", "--no-progress-bar",
          "-p", "preset", "smoke", "-p", "work_dir", str(tmp_path / "work")], tmp_path, env, 1200)
    nb = json.loads(executed.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code[0]["outputs"] == [], "the setup cell must do nothing where ssl4sar is installed"
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    text = json.dumps(nb)
    # the realism section used the seven real patches shipped inside the wheel
    for patch in ("sample_1632", "sample_1948", "sample_4737"):
        assert patch in text
