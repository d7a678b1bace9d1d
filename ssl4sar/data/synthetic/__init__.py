"""Procedural glacier scenes written in the CaFFe and SSL4SAR layouts, plus a georeferenced time series.

The book's default run, CI and the tests train and evaluate on this data, so the scenes imitate what makes
calving-front extraction hard in real SAR imagery. Modules, in the order a scene is made:

* :mod:`~ssl4sar.data.synthetic.catalogue` — sensors, glaciers, seasons, the generator's version;
* :mod:`~ssl4sar.data.synthetic.noise` — fractal and oriented noise fields;
* :mod:`~ssl4sar.data.synthetic.geometry` — the fjord (:class:`FjordGeometry`) and its zone / front labels;
* :mod:`~ssl4sar.data.synthetic.radiometry` — backscatter, speckle, 8-bit scaling; :func:`make_scene`;
* :mod:`~ssl4sar.data.synthetic.optical` — Sentinel-2-like optical scenes;
* :mod:`~ssl4sar.data.synthetic.writers` — deterministic PNG / GeoTIFF / CSV writers and CaFFe names;
* :mod:`~ssl4sar.data.synthetic.layouts` — :func:`generate_caffe` (spec §1.1), :func:`generate_ssl4sar` (§2);
* :mod:`~ssl4sar.data.synthetic.time_series` — :func:`generate_time_series`, a front with known positions;
* :mod:`~ssl4sar.data.synthetic.build` — :func:`generate`, the layouts of a preset's ``synthetic`` section;
* :mod:`~ssl4sar.data.synthetic.ensure` — :func:`ensure_synthetic_data`, generate once per preset and seed;
* :mod:`~ssl4sar.data.synthetic.raw_scenes` — :func:`generate_raw_scenes`, input of :mod:`ssl4sar.data.construct`.

All files are deterministic: same seed → byte-identical files, no timestamps. Every public name is
importable from this package (``from ssl4sar.data.synthetic import generate``).
"""

from __future__ import annotations

from ssl4sar.data.synthetic.build import LAYOUTS, generate, synthetic_difficulty
from ssl4sar.data.synthetic.catalogue import (
    ARCTIC_GLACIERS,
    GENERATOR_VERSION,
    LAYOUT_MARKER,
    S2_SR_BAND_ORDER,
    SENSOR_RESOLUTION_OVERRIDES,
    SENSORS,
    TEST_GLACIERS,
    TRAIN_GLACIERS,
    ZONE_PNG_VALUES,
    SensorSpec,
    hemisphere,
    season_of,
)
from ssl4sar.data.synthetic.ensure import COMPLETE_MARKER, ensure_synthetic_data
from ssl4sar.data.synthetic.geometry import (
    FjordGeometry,
    Tributary,
    front_from_zones,
    profile_grid,
    profile_length,
    random_geometry,
    rasterise_zones,
)
from ssl4sar.data.synthetic.layouts import caffe_scene_list, generate_caffe, generate_ssl4sar
from ssl4sar.data.synthetic.noise import fractal_noise, fractal_noise_1d, oriented_noise
from ssl4sar.data.synthetic.optical import SCL_CODES, make_optical, polar_transform
from ssl4sar.data.synthetic.radiometry import Radiometry, Scene, make_scene, speckle_and_quantise
from ssl4sar.data.synthetic.raw_scenes import (
    RAW_GLACIERS,
    RAW_OPTICAL_CRS,
    RAW_S2_BANDS,
    RAW_SAR_CRS,
    S2_RESOLUTION_GROUPS,
    RawPattern,
    RawScenes,
    generate_raw_scenes,
)
from ssl4sar.data.synthetic.time_series import generate_time_series
from ssl4sar.data.synthetic.writers import bounding_box_text, caffe_stem, write_geotiff, write_png

# re-exported: the class and glacier facts live in ssl4sar.domain
from ssl4sar.domain import CAFFE_GLACIERS, CLASS_TO_ZONE_VALUE, GLACIER, NA, OCEAN, ROCK, season_in

__all__ = [
    "ARCTIC_GLACIERS", "CAFFE_GLACIERS", "CLASS_TO_ZONE_VALUE", "COMPLETE_MARKER", "GENERATOR_VERSION", "GLACIER",
    "LAYOUTS",
    "LAYOUT_MARKER", "NA", "OCEAN", "RAW_GLACIERS", "RAW_OPTICAL_CRS", "RAW_S2_BANDS", "RAW_SAR_CRS", "ROCK",
    "S2_RESOLUTION_GROUPS", "S2_SR_BAND_ORDER", "SCL_CODES", "SENSORS", "SENSOR_RESOLUTION_OVERRIDES",
    "TEST_GLACIERS", "TRAIN_GLACIERS", "ZONE_PNG_VALUES", "FjordGeometry", "Radiometry", "RawPattern",
    "RawScenes", "Scene", "SensorSpec", "Tributary", "bounding_box_text", "caffe_scene_list", "caffe_stem",
    "fractal_noise", "fractal_noise_1d", "ensure_synthetic_data", "front_from_zones", "generate", "generate_caffe",
    "generate_raw_scenes",
    "generate_ssl4sar", "generate_time_series", "hemisphere", "make_optical", "make_scene", "oriented_noise",
    "polar_transform", "profile_grid", "profile_length", "random_geometry", "rasterise_zones", "season_in",
    "season_of", "speckle_and_quantise", "synthetic_difficulty", "write_geotiff", "write_png",
]
