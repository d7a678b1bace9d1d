"""ssl4sar.domain: the facts named once (classes, glaciers, seasons, the no-MDE placeholder, display downsampling),
and the unit conversion and reprojection of ssl4sar.geo that replaced private copies."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import CRS
from shapely.geometry import box

from ssl4sar import domain, geo

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("glacier", "winter_months"), [
    ("COL", [1, 2, 3, 9, 10, 11, 12]), ("JAC", [1, 2, 3, 9, 10, 11, 12]),
    ("Mapple", [4, 5, 6, 7, 8]), ("SI", [4, 5, 6, 7, 8]), ("Crane", [4, 5, 6, 7, 8]),
])
def test_season_rule(glacier: str, winter_months: list[int]) -> None:
    from ssl4sar.data import caffe, synthetic
    from ssl4sar.metrics import season_of as metrics_season_of

    for month in range(1, 13):
        expected = "winter" if month in winter_months else "summer"
        assert domain.season_of(glacier, month) == expected
        assert caffe.season_of(glacier, month) == metrics_season_of(glacier, month) == expected
        assert synthetic.season_of(glacier, month) == expected
        assert caffe.is_winter(glacier, month) == (expected == "winter")
    with pytest.raises(ValueError, match="month must be in 1..12, got 13"):
        domain.season_of(glacier, 13)


def test_synthetic_arctic_glaciers_use_the_northern_rule() -> None:
    from ssl4sar.data import synthetic

    assert synthetic.season_of("Helheim", 1) == domain.season_in("north", 1) == "winter"
    assert synthetic.season_of("Helheim", 6) == "summer"
    with pytest.raises(ValueError, match="hemisphere"):
        domain.season_in("east", 1)  # type: ignore[arg-type]


def test_class_and_glacier_facts() -> None:
    from ssl4sar.data import caffe, synthetic

    assert domain.CLASS_NAMES == ("NA", "rock", "glacier", "ocean") and domain.NUM_CLASSES == 4
    assert (domain.NA, domain.ROCK, domain.GLACIER, domain.OCEAN) == (0, 1, 2, 3)
    classes = np.arange(4, dtype=np.uint8)
    assert np.array_equal(caffe.zones_to_classes(caffe.classes_to_zones(classes)), classes)
    assert synthetic.ZONE_PNG_VALUES.tolist() == list(domain.CLASS_TO_ZONE_VALUE) == [0, 64, 127, 254]
    assert domain.GLACIERS == ("Mapple", "COL", "Crane", "DBE", "JAC", "Jorum", "SI") == caffe.GLACIERS
    assert domain.NORTHERN_GLACIERS == {"COL", "JAC"}
    assert synthetic.TEST_GLACIERS == ("Mapple", "COL")


def test_each_fact_has_one_home() -> None:
    """The literals that used to be copied into several modules now stand only in ssl4sar/domain.py."""
    patterns = {
        "class names": re.compile(r"\(\s*\"NA\",\s*\"rock\",\s*\"glacier\""),
        "zone colours": re.compile(r"#8c6d46"),
        "no-MDE placeholder": re.compile(r"^\s*[A-Z_]*MDE[A-Z_]*\s*=\s*1\.?0?e6", re.MULTILINE),
        "season rule": re.compile(r"month\s*<=\s*3\s+or\s+month\s*>=\s*9|4\s*<=\s*month\s*<=\s*8"),
        "block maximum": re.compile(r"\.max\(axis=\(1,\s*3\)\)"),
    }
    found = {name: [] for name in patterns}
    for path in sorted((ROOT / "ssl4sar").rglob("*.py")):
        if path.name == "domain.py":
            continue
        text = path.read_text(encoding="utf-8")
        for name, pattern in patterns.items():
            if pattern.search(text):
                found[name].append(str(path.relative_to(ROOT)))
    assert found == {name: [] for name in patterns}


def test_display_downsampling() -> None:
    assert domain.display_step((1000, 3000), 1500) == 2
    assert domain.display_step((1000, 3001), 1500) == 3
    assert domain.display_step((100, 100), 1500) == 1 and domain.display_step((5000, 10), None) == 1
    a = np.zeros((5, 7), dtype=np.uint8)
    a[4, 6] = 1  # a one-pixel front in the last, incomplete block
    assert domain.downsample_for_display(a, 2).shape == (3, 4) and domain.downsample_for_display(a, 2).sum() == 1
    kept = domain.downsample_for_display(a, 3, keep_lines=True)
    assert kept.shape == (2, 3) and kept[1, 2] == 1 and kept.sum() == 1
    assert domain.downsample_for_display(a, 3).sum() == 0  # plain striding loses it
    assert domain.downsample_for_display(a, 1) is not None and domain.downsample_for_display(a, 1).shape == (5, 7)


def test_unit_factor_m_for_pyproj_and_rasterio_crs() -> None:
    from rasterio.crs import CRS as RioCRS

    assert geo.unit_factor_m("EPSG:32622") == 1.0
    us_ft = 1200.0 / 3937.0
    assert geo.unit_factor_m(CRS.from_epsg(2264)) == pytest.approx(us_ft)
    assert geo.unit_factor_m(RioCRS.from_epsg(2264)) == pytest.approx(us_ft)


def test_reprojection_densifies_on_request() -> None:
    utm = CRS.from_epsg(32622)
    footprint = box(500_000.0, 7_600_000.0, 600_000.0, 7_700_000.0)  # 100 km square
    plain = geo.reproject_geometry(footprint, utm, geo.WGS84)
    dense = geo.reproject_geometry(footprint, utm, geo.WGS84, densify=64)
    assert len(shapely.get_coordinates(plain)) == 5
    assert len(shapely.get_coordinates(dense)) == 4 * 64 + 1
    # the middle of the square's southern edge: on the densified outline, ~0.0045° (~170 m) off the plain one
    mid = geo.reproject_geometry(shapely.Point(550_000.0, 7_600_000.0), utm, geo.WGS84)
    assert dense.boundary.distance(mid) < 1e-5 < 4e-3 < plain.boundary.distance(mid)
    assert geo.reproject_geometry(footprint, utm, "EPSG:32622", densify=64) is footprint
