"""Front masks → georeferenced lines (ssl4sar.geo): pixel chains, map coordinates, lengths, CRS, GeoJSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from pyproj import CRS, Geod, Transformer
from rasterio.transform import Affine, from_origin
from shapely.geometry import LineString, MultiLineString

from ssl4sar import geo
from ssl4sar.errors import DataError

UTM22 = "EPSG:32622"
# a 20 m grid in UTM 22N near Jakobshavn (x0 = 547 000 m E, y0 = 7 675 000 m N)
T20 = from_origin(547_000.0, 7_675_000.0, 20.0, 20.0)


def test_straight_line_is_one_ordered_chain():
    f = np.zeros((10, 30), dtype=np.uint8)
    f[4, 3:25] = 255
    lines = geo.front_polylines(f)
    assert len(lines) == 1
    rc = lines[0]
    np.testing.assert_array_equal(rc[:, 0], 4)
    np.testing.assert_array_equal(rc[:, 1], np.arange(3, 25))


def test_staircase_of_a_4_connected_boundary_gives_one_diagonal_chain():
    # the glacier/ocean boundary of a diagonal front is a 4-connected staircase (2 px per row)
    f = np.zeros((12, 12), dtype=bool)
    for i in range(10):
        f[i, i] = f[i, i + 1] = True
    for mode in ("chains", "longest"):
        lines = geo.front_polylines(f, mode=mode)
        assert len(lines) == 1, mode  # the parallel staircase pixels are not traced as a second line
        rc = lines[0]
        assert tuple(rc[0]) == (0, 0) and tuple(rc[-1]) == (9, 10)
        steps = np.abs(np.diff(rc, axis=0))
        assert steps.max() <= 1 and np.all(steps.sum(axis=1) >= 1)  # consecutive 8-neighbours


def test_branches_longest_vs_chains():
    f = np.zeros((20, 20), dtype=np.uint8)
    f[10, 2:18] = 1   # main line, 16 px
    f[2:10, 9] = 1    # side branch, 8 px, joining at (10, 9)
    longest = geo.front_polylines(f, mode="longest")
    assert len(longest) == 1 and len(longest[0]) == 16  # the geodesic through the junction: 8 + 8 px
    chains = geo.front_polylines(f, mode="chains")
    assert len(chains) == 2
    covered = {tuple(p) for line in chains for p in line.astype(int)}
    missing = {tuple(p) for p in np.argwhere(f)} - covered
    assert len(missing) <= 2  # only pixels next to the junction are skipped
    # the branch is joined to the first line (shares a vertex)
    first = {tuple(p) for p in chains[0]}
    assert any(tuple(p) in first for p in chains[1][[0, -1]])


def test_components_isolated_pixels_and_order():
    f = np.zeros((10, 10), dtype=bool)
    f[1, 5:9] = True   # component A (first in row-major order)
    f[7, 1:4] = True   # component B
    f[4, 0] = True     # isolated pixel: no line
    lines = geo.front_polylines(f)
    assert [len(x) for x in lines] == [4, 3]
    assert lines[0][0, 0] == 1 and lines[1][0, 0] == 7
    assert geo.front_polylines(np.zeros((5, 5))) == []
    assert geo.front_to_geometry(np.zeros((5, 5))) is None
    with pytest.raises(ValueError, match="mode"):
        geo.front_polylines(f, mode="skeleton")  # type: ignore[arg-type]


def test_pixel_centres_to_map_coordinates():
    x, y = geo.pixels_to_map(np.array([0, 2]), np.array([0, 5]), T20)
    np.testing.assert_allclose(x, [547_010.0, 547_110.0])
    np.testing.assert_allclose(y, [7_674_990.0, 7_674_950.0])
    # identity transform = pixel coordinates
    x, y = geo.pixels_to_map(np.array([3]), np.array([7]), Affine.identity())
    assert (x[0], y[0]) == (7.5, 3.5)
    # a rotated transform is applied in full
    rot = T20 @ Affine.rotation(30)
    x, y = geo.pixels_to_map(np.array([4]), np.array([9]), rot)
    ex, ey = rot @ (9.5, 4.5)
    assert (x[0], y[0]) == pytest.approx((ex, ey))


def test_straight_front_in_map_units():
    # ocean east of column 40: the front pixels are column 40, centre x = x0 + 40.5 · 20 m
    f = np.zeros((50, 80), dtype=np.uint8)
    f[:, 40] = 1
    g = geo.front_to_geometry(f, T20)
    assert isinstance(g, LineString)
    xy = np.asarray(g.coords)
    np.testing.assert_allclose(xy[:, 0], 547_000.0 + 40.5 * 20.0)
    assert xy[:, 1].max() == pytest.approx(7_675_000.0 - 10.0)
    assert xy[:, 1].min() == pytest.approx(7_675_000.0 - 49.5 * 20.0)
    assert geo.geometry_length_m(g, UTM22) == pytest.approx(49 * 20.0)
    f[2, 70:75] = 1  # a second piece → MultiLineString
    assert isinstance(geo.front_to_geometry(f, T20), MultiLineString)


def test_lengths_projected_units_and_geodesic():
    line = LineString([(547_000.0, 7_670_000.0), (551_000.0, 7_673_000.0)])  # 5 km in UTM 22N
    assert geo.geometry_length_m(line, UTM22) == pytest.approx(5000.0)
    # a CRS in US survey feet: lengths are converted to metres
    ft = CRS.from_epsg(2264)
    line_ft = LineString([(0.0, 0.0), (1000.0, 0.0)])
    assert geo.geometry_length_m(line_ft, ft) == pytest.approx(1000.0 * 1200.0 / 3937.0)
    # geographic: geodesic on the ellipsoid, equal to pyproj's inverse problem for a single segment
    ll = geo.reproject_geometry(line, UTM22, geo.WGS84)
    (lon0, lat0), (lon1, lat1) = ll.coords
    _, _, d = Geod(ellps="WGS84").inv(lon0, lat0, lon1, lat1)
    assert geo.geometry_length_m(ll, "EPSG:4326") == pytest.approx(d, rel=1e-9)
    # and close to the UTM length (scale factor 0.9996..1.0004 in the zone)
    assert geo.geometry_length_m(ll, "EPSG:4326") == pytest.approx(5000.0, rel=1e-3)
    assert geo.geometry_length_m(None, UTM22) == 0.0


def test_crs_round_trip_to_wgs84_is_sub_millimetre(tmp_path):
    f = np.zeros((60, 60), dtype=np.uint8)
    rr = np.arange(60)
    f[rr, (20 + 10 * np.sin(rr / 9)).astype(int)] = 1
    g = geo.front_to_geometry(f, T20)
    ll = geo.reproject_geometry(g, UTM22, 4326)
    lon, lat = shapely.get_coordinates(ll).T
    assert np.all((-51 < lon) & (lon < -48)) and np.all((68 < lat) & (lat < 70))  # lon/lat order (RFC 7946)
    back = geo.reproject_geometry(ll, "EPSG:4326", UTM22)
    assert g.hausdorff_distance(back) < 1e-3
    # and through a file: EPSG:4326 is written without a crs member, at full precision
    path = geo.write_geojson(tmp_path / "front_wgs84.geojson", [(ll, {"scene": "x"})], geo.WGS84)
    obj = json.loads(path.read_text())
    assert "crs" not in obj and obj["type"] == "FeatureCollection"
    fc = geo.read_geojson(path)
    assert fc.crs == geo.WGS84
    back2 = geo.reproject_geometry(fc.features[0].geometry, fc.crs, UTM22)
    assert g.hausdorff_distance(back2) < 1e-3
    # pyproj agrees on the first vertex
    tr = Transformer.from_crs(UTM22, 4326, always_xy=True)
    first = shapely.get_coordinates(g)[0]
    assert tr.transform(*first) == pytest.approx(tuple(shapely.get_coordinates(ll)[0]), abs=1e-12)


def test_geojson_crs_members_properties_and_pixel_coordinates(tmp_path):
    line = LineString([(547_010.0, 7_674_990.0), (547_110.0, 7_674_950.0)])
    p = geo.write_geojson(tmp_path / "a.geojson", [(line, {"n": np.int64(3), "u": float("nan")}), (None, {})],
                          UTM22)
    obj = json.loads(p.read_text())
    assert obj["crs"]["properties"]["name"] == "EPSG:32622"
    assert obj["features"][0]["properties"] == {"n": 3, "u": None}
    assert obj["features"][1]["geometry"] is None
    fc = geo.read_geojson(p)
    assert fc.crs == CRS.from_epsg(32622)
    assert fc.features[0].geometry.equals(line) and fc.features[1].geometry is None
    assert len(fc.geometries()) == 1
    # pixel coordinates
    q = geo.write_geojson(tmp_path / "px.geojson", [(line, {})], None)
    assert json.loads(q.read_text())["coordinate_system"] == "pixel"
    assert geo.read_geojson(q).crs is None
    # the generator's style (crs name member) and a bare geometry
    r = tmp_path / "bare.geojson"
    r.write_text(json.dumps({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}))
    assert geo.read_geojson(r).crs == geo.WGS84 and len(geo.read_geojson(r).features) == 1


@pytest.mark.parametrize("text, problem", [
    ("{not json", "not readable as JSON"),
    ('{"features": []}', "not a GeoJSON object"),
    ('{"type": "FeatureCollection", "features": [{"type": "Point"}]}', "not a GeoJSON Feature"),
    ('{"type": "Feature", "geometry": {"type": "LineString", "coordinates": "x"}, "properties": {}}',
     "invalid geometry"),
    ('{"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:999999"}}, '
     '"features": []}', "crs"),
    # Python's json reads NaN and Infinity (RFC 7946 has neither); such a front measured nothing, silently
    ('{"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [NaN, 1]]}, "properties": {}}',
     r"feature 0 has non-finite coordinates \(NaN or infinite\)"),
    ('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": null, "properties": {}}, '
     '{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [Infinity, 1], [0, 0]]]}, '
     '"properties": {}}]}', r"feature 1 has non-finite coordinates"),
])
def test_bad_geojson_raises_data_error_naming_the_file(tmp_path, text, problem):
    p = tmp_path / "bad.geojson"
    p.write_text(text)
    with pytest.raises(DataError, match=problem) as err:
        geo.read_geojson(p)
    assert str(p) in str(err.value)
    with pytest.raises(DataError, match="not found"):
        geo.read_geojson(tmp_path / "missing.geojson")


def test_local_metric_crs():
    ll = LineString([(-49.8, 69.1), (-49.7, 69.2)])
    assert geo.local_metric_crs(ll, 4326) == CRS.from_epsg(32622)
    assert geo.local_metric_crs(LineString([(-62.3, -65.2), (-62.2, -65.1)]), 4326) == CRS.from_epsg(32720)
    assert geo.local_metric_crs(ll, UTM22) == CRS.from_epsg(32622)
