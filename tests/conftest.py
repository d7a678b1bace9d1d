"""Shared pytest fixtures.

Reference-equivalence tests (marker ``reference``) read the official code's numbers from the folder named by
``SSL4SAR_REFERENCE_FIXTURES``; they skip with a clear reason when it is unset. The real CaFFe sample patches
are found through ``SSL4SAR_REAL_SAMPLES`` or next to the fixtures (``../shared/real-samples/caffe-patches``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder of the official-code fixtures, from ``$SSL4SAR_REFERENCE_FIXTURES``."""
    value = os.environ.get("SSL4SAR_REFERENCE_FIXTURES")
    if not value:
        pytest.skip("SSL4SAR_REFERENCE_FIXTURES is not set: reference-equivalence fixtures unavailable "
                    "(CI sets it to ../shared/fixtures/reference)")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"SSL4SAR_REFERENCE_FIXTURES={value} is not a directory")
    return path


@pytest.fixture(scope="session")
def real_samples_dir() -> Path:
    """Folder with the seven real CaFFe patches (GeoTIFF); skips when absent."""
    candidates = []
    if os.environ.get("SSL4SAR_REAL_SAMPLES"):
        candidates.append(Path(os.environ["SSL4SAR_REAL_SAMPLES"]))
    if os.environ.get("SSL4SAR_REFERENCE_FIXTURES"):
        candidates.append(Path(os.environ["SSL4SAR_REFERENCE_FIXTURES"]).resolve().parent.parent
                          / "real-samples" / "caffe-patches")
    candidates.append(Path(__file__).resolve().parent.parent.parent / "shared" / "real-samples" / "caffe-patches")
    for c in candidates:
        if (c / "metadata.csv").is_file():
            return c
    pytest.skip("real CaFFe sample patches not found (set SSL4SAR_REAL_SAMPLES or SSL4SAR_REFERENCE_FIXTURES)")
