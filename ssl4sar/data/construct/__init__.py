"""Building the SSL4SAR pretraining layout from raw, georeferenced Sentinel-1 and Sentinel-2 scenes.

The reference code assumes that every SAR image of a glacier and that glacier's optical image share one pixel
grid (spec §2.2, "nothing reprojects"). This package makes that true for arbitrary inputs:

Inputs
    * **Sentinel-1 scenes**: single-band GeoTIFFs (band 1 is used) in any projected or geographic CRS, holding
      σ⁰ in dB, linear σ⁰ (intensity), calibrated amplitude, uncalibrated digital numbers (any integer type) or
      an 8-bit image. ``sar_units="auto"`` decides per scene (:func:`resolve_sar_units`): ``uint8`` → already
      8-bit; a band description / tag naming the unit (``dB``, ``amplitude``, ``intensity``/``power``/``linear``)
      → that; other integer types → ``dn``; floats with any negative valid value → ``db``; other floats →
      ``intensity``. Declare the unit (``sar_units=...`` / ``--sar-units``) when the guess could be wrong.
      No-data: the file's no-data value, NaN/±inf, and for the linear units values ≤ 0.
      Acquisition date: ``YYYYMMDD[Thhmmss]`` or ``YYYY-MM-DD`` in the file name, else the ``ACQUISITION_DATE``
      / ``DATE`` / ``TIFFTAG_DATETIME`` tag. Sensor: ``S1`` (``S1A``/``S1B``/… prefixes), or the file name's first
      ``_`` field, or ``sensor=...``.
    * **Sentinel-2 L2A scenes**: any mix of one multi-band file per scene (bands named by their descriptions, or
      the Google Earth Engine ``COPERNICUS/S2_SR`` order when the file has ≥ 15 unnamed bands), one file per
      resolution group (10 / 20 / 60 m, band descriptions), or one file per band (the band in the file name,
      e.g. ``T22WEV_20190712T150759_B04_10m.jp2``), in any CRS. Files whose names differ only by the band / the
      ``_10m``-style suffix form one scene; a band present at several resolutions is taken at the finest.
      B1…B12 are required, AOT, WVP and SCL are filled with 0 (and logged) when absent. No-data: the file's
      no-data value (0 for L2A products when unset).
    * **Areas of interest** (:func:`read_aois`): a GeoJSON ``FeatureCollection``, one feature per glacier with
      the property ``glacier`` (no ``_`` in the name — it is a file-name field), and a Polygon / MultiPolygon
      geometry or a ``bbox`` ``[minx, miny, maxx, maxy]`` (feature member or property). Coordinates are lon/lat
      (EPSG:4326) unless the collection's ``crs`` member or the feature's ``crs`` property names another CRS.
      Optional properties: ``resolution_m`` (grid spacing), ``grid_crs`` (grid CRS), or a full ``grid``
      ``{"crs": ..., "transform": [a, b, c, d, e, f], "width": W, "height": H}``.

The glacier grid
    An explicit ``grid``, else: CRS = ``grid_crs`` or the CRS of the glacier's *first* overlapping SAR scene (by
    acquisition date, then name); spacing = ``resolution_m`` (property, else the ``resolution_m`` argument, else
    the first scene's pixel size); the grid covers the area of interest's bounding box and, when it shares that
    scene's CRS, lies on that scene's pixel lattice (so the first scene is cropped, not resampled). Grids are
    stored in ``grids.json`` and reused by later runs into the same folder.

Resampling (rasterio / GDAL ``reproject``)
    SAR: bilinear, in the log domain (dB), before the 8-bit conversion; only the part of a scene around the grid
    is read. Sentinel-2: bilinear for reflectances, AOT and WVP, nearest for SCL, each band from its native
    resolution. Several Sentinel-2 scenes of a glacier are mosaicked: the one covering most of the grid first,
    its gaps filled from the next ones; the output is named after the first one's date.

8-bit SAR (what :mod:`ssl4sar.data.unlabeled` reads; 0 = no data)
    ``db`` / ``intensity`` / ``amplitude``: converted to dB (``10·log10`` of intensity, ``20·log10`` of
    amplitude), clipped to ``db_range`` (default −30 … +5 dB) and mapped linearly to 1 … 255
    (``DN = 1 + 254·(dB − lo)/(hi − lo)``, rounded). ``dn``: ``20·log10(DN)`` stretched between its
    ``dn_percentiles`` (0.5 %, 99.5 %) over the glacier grid, mapped to 1 … 255 (uncalibrated, so per scene).
    ``uint8``: kept (bilinear resampling, rounded, 1 … 255).

Output (the layout :mod:`ssl4sar.data.unlabeled` reads)::

    <out>/sar/{train,val}/<Sensor>_<Glacier>_<YYYY-MM-DD>_<k>.tif   uint8, 1 band, nodata 0, the glacier grid
    <out>/optical/<Glacier>_S2_<YYYY-MM-DD>.tif                     15 bands B1…B12, AOT, WVP, SCL (S2_SR order),
                                                                    the input dtype (uint16 for L2A), nodata 0
    <out>/manifest.csv          file, glacier, date, sensor, crs, resolution_m, valid_fraction, source, split
    <out>/manifest_skipped.csv  source, kind (sar / optical / aoi), glacier, reason
    <out>/grids.json            the glacier grids
    <out>/construction.json     the settings of the run (units, dB range, percentiles, split, thresholds, sensor)

``k`` numbers the scenes of one glacier and date (sorted by source name). ``split``: per glacier the latest
``val_fraction`` of the overlapping scenes (by date; at least one when a glacier has two or more) go to ``val``.
Scenes whose valid part of the grid is below ``min_valid_fraction`` are skipped.

Robustness
    Every output is written to a temporary file and renamed. A row is appended to ``manifest.csv`` (and flushed)
    as soon as its file is complete, so an interrupted run can be repeated: outputs that exist, have a row *and*
    read whole on their glacier's grid are skipped (one damaged since, e.g. by an interrupted copy of the folder,
    is written again with a warning); the manifest is rewritten sorted at the end. Bad inputs — unreadable (also
    when only the pixel data is cut off, found while reading it), no CRS, no overlap with any area of interest, no
    valid pixel over it, no date, unidentifiable bands — are logged, listed in ``manifest_skipped.csv`` with the
    reason, and skipped without stopping the run. A re-run into a folder built with other settings
    (``resolution_m`` other than its grids', or any setting of ``construction.json``) is refused with a
    :class:`DataError` instead of silently reusing outputs made with the old ones.

Modules (in the order a run uses them)
    :mod:`~ssl4sar.data.construct.scanning` (finding the scenes: dates, sensors, bands),
    :mod:`~ssl4sar.data.construct.grids` (areas of interest and glacier grids),
    :mod:`~ssl4sar.data.construct.radiometry` (SAR units, dB, 8-bit),
    :mod:`~ssl4sar.data.construct.resampling` (scenes onto a grid, raster writing),
    :mod:`~ssl4sar.data.construct.manifest` (the resumable run record and skip report),
    :mod:`~ssl4sar.data.construct.build` (:func:`construct_ssl4sar`, the run). Every public name is importable
    from ``ssl4sar.data.construct``.
"""

from ssl4sar.data.construct.build import construct_ssl4sar
from ssl4sar.data.construct.grids import GlacierAOI, GlacierGrid, glacier_grid, read_aois
from ssl4sar.data.construct.manifest import (
    GRIDS_NAME,
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    SETTINGS_NAME,
    SKIPPED_COLUMNS,
    SKIPPED_NAME,
    ConstructionManifest,
)
from ssl4sar.data.construct.radiometry import (
    DEFAULT_DB_RANGE,
    DEFAULT_DN_PERCENTILES,
    SAR_UNITS,
    db_to_uint8,
    resolve_sar_units,
    sar_to_db,
)
from ssl4sar.data.construct.resampling import reproject_to_grid
from ssl4sar.data.construct.scanning import (
    CATEGORICAL_BANDS,
    RASTER_SUFFIXES,
    REQUIRED_S2_BANDS,
    S2_BANDS,
    S2_SR_ORDER,
    BandSource,
    OpticalScene,
    SarScene,
    parse_date,
    scan_optical,
    scan_sar,
)

__all__ = [
    "SAR_UNITS", "DEFAULT_DB_RANGE", "DEFAULT_DN_PERCENTILES", "S2_BANDS", "MANIFEST_COLUMNS", "SKIPPED_COLUMNS",
    "GlacierGrid", "GlacierAOI", "SarScene", "OpticalScene", "ConstructionManifest",
    "read_aois", "scan_sar", "scan_optical", "resolve_sar_units", "sar_to_db", "db_to_uint8", "glacier_grid",
    "reproject_to_grid", "construct_ssl4sar", "parse_date",
    # also importable from here, as before the split into modules
    "S2_SR_ORDER", "REQUIRED_S2_BANDS", "CATEGORICAL_BANDS", "RASTER_SUFFIXES", "BandSource",
    "MANIFEST_NAME", "SKIPPED_NAME", "GRIDS_NAME", "SETTINGS_NAME",
]
