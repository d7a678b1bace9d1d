"""Shared pytest fixtures.

Reference-equivalence tests (marker ``reference``) read the official code's numbers from
``tests/fixtures/reference`` (provenance in its README), or from the folder named by
``SSL4SAR_REFERENCE_FIXTURES`` when that is set. The seven real CaFFe patches ship inside the package
(:mod:`ssl4sar.data.samples`); ``SSL4SAR_REAL_SAMPLES`` points the tests at another folder of the same layout.
Neither fixture skips: a missing folder is an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


REFERENCE_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder of the official-code fixtures: ``$SSL4SAR_REFERENCE_FIXTURES`` or ``tests/fixtures/reference``."""
    value = os.environ.get("SSL4SAR_REFERENCE_FIXTURES")
    path = Path(value) if value else REFERENCE_FIXTURES
    if not path.is_dir():
        pytest.fail(f"reference fixtures folder {path} does not exist"
                    + (" (from SSL4SAR_REFERENCE_FIXTURES)" if value else ""))
    return path


@pytest.fixture(scope="session")
def real_samples_dir() -> Path:
    """Folder with the seven real CaFFe patches (GeoTIFF + metadata.csv): ``$SSL4SAR_REAL_SAMPLES`` or the package's."""
    from ssl4sar.data import samples

    value = os.environ.get("SSL4SAR_REAL_SAMPLES")
    if not value:
        return samples.patches_dir()
    path = Path(value)
    if not (path / samples.METADATA_FILENAME).is_file():
        pytest.fail(f"SSL4SAR_REAL_SAMPLES={value} holds no {samples.METADATA_FILENAME}")
    return path


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op torch thread for a module's tests (``pytestmark = pytest.mark.usefixtures(...)``): the test
    machines' cores are shared, and the tiny networks are much faster on one thread than on contending ones."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic CaFFe-layout data of the smoke preset (5 train, 1 val, 3 test scenes), made once per session."""
    from ssl4sar.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("smoke_data"), preset="smoke", seed=0, layouts=("caffe",))["caffe"]
