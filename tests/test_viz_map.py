"""The glacier map of the data chapter must draw offline: Natural Earth coastlines only from a local copy, never a
download (``ssl4sar.viz.natural_earth_path`` / ``ssl4sar.viz.glacier_map``)."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import cartopy
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import shapefile  # noqa: E402  (pyshp, a cartopy dependency)
from cartopy.mpl.feature_artist import FeatureArtist  # noqa: E402

from ssl4sar import viz  # noqa: E402
from ssl4sar.data.caffe import GLACIERS, NORTHERN_GLACIERS  # noqa: E402


@pytest.fixture
def offline_cartopy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cartopy with empty data folders, its downloaders removed and any URL fetch failing the test."""
    data_dir = tmp_path / "cartopy-data"
    data_dir.mkdir()
    monkeypatch.setitem(cartopy.config, "data_dir", data_dir)
    monkeypatch.setitem(cartopy.config, "pre_existing_data_dir", tmp_path / "no-pre-existing")
    monkeypatch.setitem(cartopy.config, "downloaders", {})

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return data_dir


def _write_coastline(data_dir: Path, resolution: str) -> Path:
    """A tiny Natural Earth-style coastline shapefile: one line along the west coast of Greenland."""
    folder = data_dir / "shapefiles" / "natural_earth" / "physical"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"ne_{resolution}_coastline"
    with shapefile.Writer(str(target), shapeType=shapefile.POLYLINE) as w:
        w.field("scalerank", "N")
        w.line([[(-53.0, 66.0), (-51.0, 69.0), (-55.0, 72.0), (-60.0, 76.0)]])
        w.record(0)
    return target.with_suffix(".shp")


def _glacier_points(ax: object) -> list[tuple[float, float]]:
    return [tuple(line.get_xydata()[0]) for line in ax.get_lines() if line.get_marker() in ("o", "^")]


def _labels(ax: object) -> set[str]:
    return {t.get_text() for t in ax.texts}


def test_natural_earth_path_is_none_without_local_files(offline_cartopy: Path) -> None:
    assert viz.natural_earth_path("coastline", "110m") is None
    assert viz.natural_earth_path("coastline", "auto") is None


def test_natural_earth_path_finds_a_local_copy_and_prefers_the_finest(offline_cartopy: Path) -> None:
    coarse = _write_coastline(offline_cartopy, "110m")
    assert viz.natural_earth_path("coastline", "110m") == coarse
    assert viz.natural_earth_path("coastline", "auto") == coarse
    fine = _write_coastline(offline_cartopy, "50m")
    assert viz.natural_earth_path("coastline", "auto") == fine
    fine.with_suffix(".dbf").unlink()   # an incomplete shapefile does not count
    assert viz.natural_earth_path("coastline", "auto") == coarse


def test_glacier_map_caption_names_the_local_copy_or_says_why_none(offline_cartopy: Path) -> None:
    assert "Coastlines are not drawn" in viz.glacier_map_caption()
    coarse = _write_coastline(offline_cartopy, "110m")
    caption = viz.glacier_map_caption()
    assert f"`{coarse.name}`" in caption and str(coarse.parent) not in caption   # a name, not the machine's path


def test_glacier_map_draws_offline_without_coastlines(offline_cartopy: Path) -> None:
    fig = viz.glacier_map()
    fig.canvas.draw()   # render everything: this is where cartopy would fetch missing data
    north, south = [ax for ax in fig.axes if hasattr(ax, "projection")]
    inset = south.child_axes[0]
    geo_axes = [north, south, inset]
    assert not any(isinstance(a, FeatureArtist) for ax in geo_axes for a in ax.artists + ax.collections)
    # all seven glaciers are drawn and labelled, each on the map of its hemisphere
    assert _labels(north) == set(NORTHERN_GLACIERS)
    assert _labels(south) == set(GLACIERS) - set(NORTHERN_GLACIERS)
    assert len(_glacier_points(north)) + len(_glacier_points(south)) == len(GLACIERS)
    assert len(_glacier_points(south)) == 5
    # the inset marks the zoomed region; the note says why there are no coastlines
    assert len(inset.get_lines()) >= 1
    note = " ".join(t.get_text() for t in fig.texts)
    assert "Coastlines not drawn" in note
    plt.close(fig)


def test_glacier_map_uses_a_local_coastline_file(offline_cartopy: Path) -> None:
    _write_coastline(offline_cartopy, "110m")
    fig = viz.glacier_map(background=False)
    fig.canvas.draw()
    north = [ax for ax in fig.axes if hasattr(ax, "projection")][0]
    features = [a for a in north.artists + north.collections if isinstance(a, FeatureArtist)]
    assert len(features) == 1
    note = " ".join(t.get_text() for t in fig.texts)
    assert "Natural Earth 110m" in note and "not drawn" not in note
    plt.close(fig)


def test_glacier_map_refuses_to_fetch_coastlines(offline_cartopy: Path) -> None:
    with pytest.raises(FileNotFoundError, match="never|nothing is downloaded"):
        viz.glacier_map(coastlines=True, background=False)
    fig = viz.glacier_map(coastlines=False, background=False)   # explicitly off: fine
    fig.canvas.draw()
    plt.close(fig)
