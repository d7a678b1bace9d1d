"""Tables that describe the data sets: what was read, how it splits, where the glaciers are.

Used by the book's data chapter (``notebooks/01_dataset.py``) and by anyone who wants to know what a data folder
holds before training on it. Everything here reads files through the layout readers
(:mod:`ssl4sar.data.caffe`, :mod:`ssl4sar.data.unlabeled`, :mod:`ssl4sar.data.construct`) and returns pandas
``DataFrame`` s; nothing is written.

* :data:`GLACIER_LOCATIONS` — the seven CaFFe glaciers with approximate coordinates (degrees) and their sources;
* :data:`PAPER_FACTS` / :func:`paper_facts` — the published counts of CaFFe and SSL4SAR, with sources, to show next
  to what a run actually read;
* :func:`caffe_inventory`, :func:`count_table`, :func:`caffe_examples` — one row per CaFFe scene (glacier, date,
  sensor, resolution, season, split, size), cross tables, a few loaded example scenes;
* :func:`unlabeled_inventory`, :func:`optical_inventory`, :func:`unlabeled_counts` — the SSL4SAR layout;
* :func:`gradient_histogram_frame` — per-class gradient-magnitude histograms of SAR patches (realism check);
* :func:`coregistration_example`, :func:`coregistration_residuals` — what :func:`ssl4sar.data.construct
  .construct_ssl4sar` did to raw scenes, and how far its output lies from a known truth pattern.

Units: coordinates in degrees (latitude north positive, longitude east positive), sizes in pixels
(``*_px``), pixel spacing in metres per pixel (``resolution_m``), σ⁰ in dB.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from PIL import UnidentifiedImageError

from ssl4sar.data import caffe
from ssl4sar.data.raster import open_image, read_raster_info
from ssl4sar.domain import display_step, downsample_for_display
from ssl4sar.errors import DataError

__all__ = [
    "GlacierLocation", "GLACIER_LOCATIONS", "glacier_table", "glacier_code", "PAPER_FACTS", "paper_facts",
    "SPLIT_ORDER", "caffe_inventory", "count_table", "caffe_examples",
    "unlabeled_inventory", "optical_inventory", "unlabeled_counts",
    "gradient_histogram_frame",
    "Footprint", "CoregistrationExample", "coregistration_example", "coregistration_residuals",
]

log = logging.getLogger(__name__)

#: row / column order of the CaFFe splits in tables
SPLIT_ORDER: tuple[str, ...] = ("train", "val", "test")


# ---------------------------------------------------------------------------------------------------------------------
# where the glaciers are
# ---------------------------------------------------------------------------------------------------------------------

_GNIS = "USGS Geographic Names Information System (GNIS), as quoted by Wikipedia"


@dataclass(frozen=True)
class GlacierLocation:
    """One CaFFe glacier.

    Attributes:
        code: the glacier field of CaFFe file names (``Mapple``, ``COL`` …).
        name: full name.
        lat, lon: approximate position in degrees (WGS 84; south and west negative). For the Antarctic glaciers
            this is the gazetteer position of the named glacier, which lies on the glacier, within about
            10–20 km of its calving front, not on the front itself.
        region: where it is.
        caffe_split: ``train`` or ``test`` (the glacier's images are all in one CaFFe folder).
        source: where the coordinates come from.
        aliases: other spellings of the glacier (e.g. in the metadata of the real sample patches).
    """

    code: str
    name: str
    lat: float
    lon: float
    region: str
    caffe_split: str
    source: str
    aliases: tuple[str, ...] = ()

    @property
    def hemisphere(self) -> str:
        """``"north"`` or ``"south"`` (from the latitude; matches :data:`ssl4sar.data.caffe.NORTHERN_GLACIERS`)."""
        return "north" if self.lat > 0 else "south"


#: The seven CaFFe glaciers (spec §1.6), in :data:`ssl4sar.data.caffe.GLACIERS` order.
GLACIER_LOCATIONS: dict[str, GlacierLocation] = {g.code: g for g in (
    GlacierLocation("Mapple", "Mapple Glacier", -65.417, -62.250, "Antarctic Peninsula, Oscar II Coast", "test",
                    f"{_GNIS}: 65°25′S 62°15′W", ("Mapple Glacier",)),
    GlacierLocation("COL", "Columbia Glacier", 61.220, -146.895, "Alaska, Prince William Sound", "test",
                    f"{_GNIS}: 61°13′11″N 146°53′43″W", ("Columbia", "Columbia Glacier")),
    GlacierLocation("Crane", "Crane Glacier", -65.333, -62.250, "Antarctic Peninsula, Oscar II Coast", "train",
                    f"{_GNIS}: 65°20′S 62°15′W", ("Crane Glacier",)),
    GlacierLocation("DBE", "Dinsmoor–Bombardier–Edgeworth glacier system", -64.317, -59.983,
                    "Antarctic Peninsula, Nordenskjöld Coast", "train",
                    f"{_GNIS}: Bombardier Glacier 64°19′S 59°59′W (Dinsmoor Glacier 64°22′S 59°59′W)",
                    ("DinsmoorBombardierEdgeworth", "Dinsmoor-Bombardier-Edgeworth")),
    GlacierLocation("JAC", "Jakobshavn Isbræ (Sermeq Kujalleq)", 69.167, -49.833, "West Greenland, Ilulissat",
                    "train", f"{_GNIS}: 69°10′N 49°50′W",
                    ("Jakobshavn", "Jakobshavn Glacier / Sermeq Kujalleq", "Sermeq Kujalleq", "Jakobshavn Isbræ")),
    GlacierLocation("Jorum", "Jorum Glacier", -65.233, -62.050, "Antarctic Peninsula, Oscar II Coast", "train",
                    f"{_GNIS}: 65°14′S 62°03′W", ("Jorum Glacier",)),
    GlacierLocation("SI", "Sjögren Inlet (Sjögren and Boydell glaciers)", -64.233, -59.000,
                    "Antarctic Peninsula, Trinity Peninsula", "train", f"{_GNIS}: Sjögren Glacier 64°14′S 59°00′W",
                    ("Sjogren", "Sjögren", "Sjögren Inlet", "Sjogren Inlet")),
)}


def glacier_table(locations: Mapping[str, GlacierLocation] | None = None) -> pd.DataFrame:
    """:data:`GLACIER_LOCATIONS` as a table: code, name, lat, lon (degrees), region, hemisphere, caffe_split, source."""
    locs = (locations or GLACIER_LOCATIONS).values()
    return pd.DataFrame([{"code": g.code, "name": g.name, "lat": g.lat, "lon": g.lon, "region": g.region,
                          "hemisphere": g.hemisphere, "caffe_split": g.caffe_split, "source": g.source}
                         for g in locs]).set_index("code")


def _name_key(name: str) -> str:
    """Comparison key of a glacier name: C1 control characters read as Windows-1252 (a mis-decoded en dash
    U+0096 is '–'), accents removed, only letters and digits kept, case-folded."""
    import unicodedata

    text = "".join(ch.encode("latin-1").decode("cp1252", errors="ignore") if 0x80 <= ord(ch) <= 0x9F else ch
                   for ch in name)
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if ch.isalnum()).casefold()


def glacier_code(name: str) -> str:
    """The CaFFe code of a glacier given its code, full name or an alias; ``KeyError`` if unknown.

    Case, accents, spaces and punctuation are ignored (``"Sjogren inlet"`` → ``SI``,
    ``"Dinsmoor–Bombardier–Edgeworth"`` → ``DBE``).
    """
    key = _name_key(name)
    for loc in GLACIER_LOCATIONS.values():
        if key in {_name_key(n) for n in (loc.code, loc.name, *loc.aliases)}:
            return loc.code
    raise KeyError(f"unknown glacier {name!r}: expected one of {', '.join(GLACIER_LOCATIONS)} or their names")


# ---------------------------------------------------------------------------------------------------------------------
# published counts
# ---------------------------------------------------------------------------------------------------------------------

_ESSD = "Gourmelon et al. 2022, ESSD 14:4287 (CaFFe), doi 10.5194/essd-14-4287-2022"
_TGRS = "Gourmelon et al. 2025, IEEE TGRS 63 (SSL4SAR), doi 10.1109/TGRS.2025.3580945"
_CHECK = "CaFFe code: data_processing/check_raw_data_is_correct.py asserts 559 train / 122 test"
_SPLIT = ("CaFFe code: data_processing/data_preprocessing.py, train_test_split(np.arange(559), test_size=0.1, "
          "random_state=1) = RandomState(1).permutation(559)[:56]")

#: Published facts about the two data sets: (dataset, quantity, value, source).
PAPER_FACTS: tuple[tuple[str, str, str, str], ...] = (
    ("CaFFe", "SAR images", "681", _ESSD),
    ("CaFFe", "glaciers", "7", _ESSD),
    ("CaFFe", "training images (train folder)", "559", _CHECK),
    ("CaFFe", "test images (test folder)", "122", _CHECK),
    ("CaFFe", "validation images (held out of the 559)", "56", _SPLIT),
    ("CaFFe", "training images after the validation hold-out", "503", _SPLIT),
    ("CaFFe", "test glaciers", "Mapple (Antarctic Peninsula), COL (Columbia, Alaska)", _ESSD),
    ("CaFFe", "training glaciers", "Crane, DBE, JAC (Jakobshavn), Jorum, SI (Sjögren Inlet)", _ESSD),
    ("CaFFe", "sensors", "ERS-1/2, ENVISAT, RADARSAT-1, ALOS PALSAR, TerraSAR-X, TanDEM-X, Sentinel-1", _ESSD),
    ("CaFFe", "pixel spacing (m/px)", "6 to 20 (file names: 20, 17, 12, 7, 6)", _ESSD),
    ("CaFFe", "labels per image", "zone mask (NA, rock, glacier, ocean incl. ice mélange) + 1-px front line", _ESSD),
    ("SSL4SAR", "Sentinel-1 SAR images (unlabeled)", "9,563", _TGRS),
    ("SSL4SAR", "Sentinel-2 images (one 14-band target per glacier)", "14", _TGRS),
)


def paper_facts(dataset: str | None = None) -> pd.DataFrame:
    """:data:`PAPER_FACTS` as a table (columns dataset, quantity, value, source), optionally of one ``dataset``."""
    df = pd.DataFrame(PAPER_FACTS, columns=["dataset", "quantity", "value", "source"])
    if dataset is not None:
        if dataset not in set(df["dataset"]):
            raise ValueError(f"unknown dataset {dataset!r}: expected CaFFe or SSL4SAR")
        df = df[df["dataset"] == dataset].reset_index(drop=True)
    return df


# ---------------------------------------------------------------------------------------------------------------------
# CaFFe
# ---------------------------------------------------------------------------------------------------------------------

def _image_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` of an image file from its header (no pixel decoding)."""
    try:
        with open_image(path) as im:
            return int(im.height), int(im.width)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(path, f"cannot read the image header: {exc}", "the file is corrupt or truncated") from exc


def caffe_inventory(root: str | Path) -> pd.DataFrame:
    """One row per CaFFe scene under ``root`` (the layout of :mod:`ssl4sar.data.caffe`).

    Columns: ``stem``, ``split`` (``train`` / ``val`` / ``test``: the train folder is partitioned into train and
    val exactly as :func:`ssl4sar.data.caffe.validation_indices` does), ``glacier``, ``date`` (datetime64),
    ``year``, ``month``, ``sensor``, ``sensor_group`` (TSX and TDX pooled), ``resolution_m`` (m/px),
    ``season`` (hemisphere rule, §8.4), ``hemisphere``, ``height_px``, ``width_px``, ``has_bbox``, ``sar_path``.
    Rows are ordered train, val, test, then by stem. Bad file names or missing masks raise
    :class:`~ssl4sar.errors.DataError` (from the reader).
    """
    root = Path(root)
    rows: list[dict[str, Any]] = []
    trainval = caffe.discover(root, "trainval")
    val = set(caffe.validation_indices(len(trainval)).tolist()) if len(trainval) >= 2 else set()
    test = caffe.discover(root, "test")
    for split_of, scenes in ((lambda i: "val" if i in val else "train", trainval), (lambda i: "test", test)):
        for i, s in enumerate(scenes):
            h, w = _image_size(s.sar_path)
            m = s.meta
            rows.append({
                "stem": s.stem, "split": split_of(i), "glacier": m.glacier, "date": pd.Timestamp(m.date),
                "year": m.date.year, "month": m.date.month, "sensor": m.sensor, "sensor_group": m.sensor_group,
                "resolution_m": float(m.resolution_m), "season": m.season, "hemisphere": m.hemisphere,
                "height_px": h, "width_px": w, "has_bbox": s.bbox_path is not None, "sar_path": s.sar_path,
            })
    df = pd.DataFrame(rows)
    df["split"] = pd.Categorical(df["split"], categories=list(SPLIT_ORDER), ordered=True)
    return df.sort_values(["split", "stem"], kind="stable").reset_index(drop=True)


def _ordered(values: Iterable[Any], preferred: Sequence[Any]) -> list[Any]:
    present = list(dict.fromkeys(values))
    head = [v for v in preferred if v in present]
    return head + sorted((v for v in present if v not in head), key=str)


_PREFERRED_ORDER: dict[str, Sequence[Any]] = {
    "glacier": caffe.GLACIERS,
    "sensor": caffe.SENSORS,
    "sensor_group": ("RSAT", "S1", "ENVISAT", "ERS", "PALSAR", "TSX/TDX"),
    "split": SPLIT_ORDER,
    "season": ("winter", "summer"),
    "hemisphere": ("north", "south"),
}


def count_table(inventory: pd.DataFrame, index: str, columns: str | None = "split", *,
                total: bool = True) -> pd.DataFrame:
    """Number of rows of ``inventory`` per ``index`` value (rows) and ``columns`` value (columns).

    Glaciers, sensors, splits and seasons come in their usual order, resolutions from coarse to fine, other values
    sorted. ``total`` adds a ``total`` row and column (a ``count`` column when ``columns`` is ``None``). Values
    absent from the data are absent from the table (a synthetic subset need not hold every sensor).
    """
    for col in (index, columns):
        if col is not None and col not in inventory.columns:
            raise KeyError(f"no column {col!r} in the inventory (columns: {', '.join(inventory.columns)})")

    def order(col: str) -> list[Any]:
        vals = inventory[col].astype(object).tolist()
        if col == "resolution_m":
            return sorted(set(vals), reverse=True)
        return _ordered(vals, _PREFERRED_ORDER.get(col, ()))

    if columns is None:
        counts = inventory.groupby(inventory[index].astype(object)).size().reindex(order(index)).rename("count")
        table = counts.to_frame()
        if total:
            table.loc["total"] = int(table["count"].sum())
        table.index.name = index
        return table.astype(int)
    table = pd.crosstab(inventory[index].astype(object), inventory[columns].astype(object))
    table = table.reindex(index=order(index), columns=order(columns), fill_value=0)
    if total:
        table["total"] = table.sum(axis=1)
        table.loc["total"] = table.sum(axis=0)
    table.index.name = index
    table.columns.name = columns
    return table.astype(int)


def caffe_examples(inventory: pd.DataFrame, root: str | Path, n: int = 3, seed: int = 0,
                   max_side_px: int | None = None) -> list[dict[str, Any]]:
    """Load ``n`` example scenes, as varied as possible: different splits, glaciers and sensors first.

    Picks (seeded) one scene per split in turn, preferring glaciers and sensors not yet shown, then loads it with
    :func:`ssl4sar.data.caffe.load_scene`. Each dict holds ``image``, ``zones``, ``front``, ``bbox`` (or ``None``),
    ``stem``, ``meta``, ``split`` and a ``title``. With ``max_side_px``, images larger than that are subsampled by
    an integer stride for display (``stride`` is recorded; the bounding box is dropped then, since its pixel
    coordinates refer to the full image).
    """
    if inventory.empty or n <= 0:
        return []
    rng = np.random.default_rng(seed)
    by_split = {s: inventory[inventory["split"] == s] for s in SPLIT_ORDER}
    chosen: list[int] = []
    seen_glaciers: set[str] = set()
    seen_sensors: set[str] = set()
    splits = [s for s in SPLIT_ORDER if not by_split[s].empty]
    k = 0
    while len(chosen) < min(n, len(inventory)) and splits:
        split = splits[k % len(splits)]
        k += 1
        cand = by_split[split].drop(index=chosen, errors="ignore")
        if cand.empty:
            splits.remove(split)
            continue
        novelty = (~cand["glacier"].isin(seen_glaciers)).astype(int) * 2 + (~cand["sensor"].isin(seen_sensors))
        best = cand[novelty == novelty.max()]
        idx = int(best.index[rng.integers(len(best))])
        chosen.append(idx)
        seen_glaciers.add(str(inventory.at[idx, "glacier"]))
        seen_sensors.add(str(inventory.at[idx, "sensor"]))
    folder_split = {"train": "trainval", "val": "trainval", "test": "test"}
    scenes = {s.stem: s for sp in {folder_split[str(inventory.at[i, "split"])] for i in chosen}
              for s in caffe.discover(root, sp)}
    out = []
    for idx in chosen:
        row = inventory.loc[idx]
        data = caffe.load_scene(scenes[str(row["stem"])])
        data["split"] = str(row["split"])
        stride = display_step(data["image"].shape, max_side_px)
        if stride > 1:
            for key in ("image", "zones", "front"):
                # keep every front pixel visible: max-pool the front, subsample the rest
                data[key] = downsample_for_display(data[key], stride, keep_lines=key == "front")
            data["bbox"] = None
        data["stride"] = stride
        m = data["meta"]
        data["title"] = (f"{m.glacier} {m.date.isoformat()} · {m.sensor} {m.resolution_label} m/px\n"
                         f"{data['split']} · {m.season} · {row['height_px']}×{row['width_px']} px")
        out.append(data)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# SSL4SAR
# ---------------------------------------------------------------------------------------------------------------------

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date_field(stem: str) -> pd.Timestamp:
    fields = stem.split("_")
    if len(fields) >= 3 and _ISO_DATE.match(fields[2]):
        try:
            return pd.Timestamp(_dt.date.fromisoformat(fields[2]))
        except ValueError:
            pass
    return pd.NaT


def unlabeled_inventory(root: str | Path, *, glacier_aliases: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per SAR image of the SSL4SAR layout under ``root`` (see :mod:`ssl4sar.data.unlabeled`).

    Columns: ``name``, ``split`` (``train`` / ``val``), ``glacier`` (the optical key it pairs with), ``sensor``
    (first file-name field), ``date`` (third field when it is ``YYYY-MM-DD``, else NaT), ``height_px``,
    ``width_px``, ``optical_file``, ``sar_path``. A missing ``sar/val`` folder is allowed (logged); a missing
    ``sar/train`` folder or a SAR image without an optical partner raises :class:`~ssl4sar.errors.DataError`.
    """
    from ssl4sar.data.unlabeled import discover_unlabeled, sar_shape

    root = Path(root)
    rows = []
    for split in ("train", "val"):
        if split == "val" and not (root / "sar" / "val").is_dir():
            log.info("%s has no sar/val folder: no SSL4SAR validation images", root)
            continue
        for p in discover_unlabeled(root, split, glacier_aliases=glacier_aliases):
            h, w = sar_shape(p.sar_path)
            rows.append({"name": p.name, "split": split, "glacier": p.glacier, "sensor": p.name.split("_")[0],
                         "date": _date_field(p.name), "height_px": h, "width_px": w,
                         "optical_file": p.optical_path.name, "sar_path": p.sar_path})
    return pd.DataFrame(rows, columns=["name", "split", "glacier", "sensor", "date", "height_px", "width_px",
                                       "optical_file", "sar_path"])


def optical_inventory(root: str | Path) -> pd.DataFrame:
    """One row per optical GeoTIFF in ``<root>/optical``: ``glacier``, ``file``, ``date`` (from the name, else NaT),
    ``bands``, ``height_px``, ``width_px``, ``crs``, ``resolution_m``, ``dtype``."""
    from ssl4sar.data.construct import parse_date
    from ssl4sar.data.unlabeled import optical_glacier_key

    folder = Path(root) / "optical"
    if not folder.is_dir():
        raise DataError(folder, "optical folder not found", "expected <root>/optical/<Glacier>_*.tif")
    rows = []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith(".") or p.suffix.lower() not in (".tif", ".tiff"):
            continue
        info = read_raster_info(p)
        d = parse_date(p.stem)
        rows.append({"glacier": optical_glacier_key(p), "file": p.name, "date": pd.Timestamp(d) if d else pd.NaT,
                     "bands": info.count, "height_px": info.shape[0], "width_px": info.shape[1],
                     "crs": info.crs.to_string() if info.crs is not None else None,
                     "resolution_m": info.resolution_m, "dtype": info.dtype})
    return pd.DataFrame(rows, columns=["glacier", "file", "date", "bands", "height_px", "width_px", "crs",
                                       "resolution_m", "dtype"])


def unlabeled_counts(inventory: pd.DataFrame, optical: pd.DataFrame | None = None) -> pd.DataFrame:
    """SAR images per glacier and split (``train``, ``val``, ``total``), first and last acquisition date, and,
    when ``optical`` (:func:`optical_inventory`) is given, the glacier's optical file; a ``total`` row at the end."""
    if inventory.empty:
        return pd.DataFrame(columns=["train", "val", "total", "first_date", "last_date"])
    table = pd.crosstab(inventory["glacier"], inventory["split"]).reindex(columns=["train", "val"], fill_value=0)
    table["total"] = table.sum(axis=1)
    dates = inventory.groupby("glacier")["date"]
    table["first_date"] = dates.min().dt.date
    table["last_date"] = dates.max().dt.date
    if optical is not None and not optical.empty:
        first = optical.groupby("glacier")["file"].first()
        table["optical_file"] = first.reindex(table.index)
    total = {c: int(table[c].sum()) for c in ("train", "val", "total")}
    total.update(first_date=inventory["date"].min().date() if inventory["date"].notna().any() else None,
                 last_date=inventory["date"].max().date() if inventory["date"].notna().any() else None)
    if "optical_file" in table.columns:
        total["optical_file"] = f"{table['optical_file'].notna().sum()} file(s)"
    table.loc["total"] = pd.Series(total)
    table.index.name = "glacier"
    return table


# ---------------------------------------------------------------------------------------------------------------------
# realism: gradient distributions
# ---------------------------------------------------------------------------------------------------------------------

class _PatchLike(Protocol):
    image: np.ndarray
    mask: np.ndarray


def gradient_histogram_frame(patches: Sequence[_PatchLike], source: str, bins: int = 64,
                             max_gradient: float = 96.0, margin: int = 2) -> pd.DataFrame:
    """Pooled per-class histograms of Sobel gradient magnitudes (grey levels / px) inside each class.

    Uses :func:`ssl4sar.data.realism.class_gradients` (pixels ``margin`` px away from other classes and no data).
    ``bins`` equal bins over ``[0, max_gradient]``; larger values go to the last bin. Long form like
    :func:`ssl4sar.data.realism.histogram_frame`: columns source, class, class_name, bin_left, bin_right, density
    (densities of a class sum to 1, or are all 0 when the class is absent).
    """
    from ssl4sar.data.realism import CLASSES, class_gradients
    from ssl4sar.domain import CLASS_NAMES

    if max_gradient <= 0 or bins < 1:
        raise ValueError(f"need bins >= 1 and max_gradient > 0, got {bins}, {max_gradient}")
    edges = np.linspace(0.0, float(max_gradient), bins + 1)
    rows = []
    for c in CLASSES:
        parts = [class_gradients(p.image, p.mask, c, margin) for p in patches]
        g = np.concatenate(parts) if parts else np.empty(0, np.float32)
        h, _ = np.histogram(np.minimum(g, max_gradient), bins=edges)
        dens = h / h.sum() if h.sum() else h.astype(float)
        rows += [{"source": source, "class": c, "class_name": CLASS_NAMES[c], "bin_left": float(edges[i]),
                  "bin_right": float(edges[i + 1]), "density": float(dens[i])} for i in range(bins)]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------------
# dataset construction: before / after
# ---------------------------------------------------------------------------------------------------------------------

class _Pattern(Protocol):
    crs: str

    def sigma0_db(self, x: np.ndarray, y: np.ndarray) -> np.ndarray: ...

    def reflectance(self, band: str, x: np.ndarray, y: np.ndarray) -> np.ndarray: ...

    def scl(self, x: np.ndarray, y: np.ndarray) -> np.ndarray: ...


@dataclass
class Footprint:
    """Outline of a raw scene in the glacier grid's CRS: ``geometry`` (shapely), ``kind`` (``sar`` / ``optical`` /
    ``aoi`` / ``grid``), ``name`` and whether the construction ``used`` it for this glacier."""

    name: str
    kind: str
    geometry: Any
    used: bool


@dataclass
class CoregistrationExample:
    """One glacier's raw inputs and constructed outputs, ready to plot (:func:`ssl4sar.viz.plot_coregistration`).

    Extents are ``(left, right, bottom, top)`` in the CRS named next to them (metres). Raw SAR ``raw_sar_db``
    (σ⁰ in dB, NaN = no data) on its own grid; raw ``raw_scl`` (Sentinel-2 scene classification codes, 0 = no data)
    on its native grid; constructed ``sar`` (uint8, 0 = no data), ``rgb`` (H, W, 3 reflectance, B4/B3/B2) and
    ``scl`` on the glacier grid (``grid_extent`` in ``grid_crs``). ``truth_db`` / ``truth_scl`` are the known
    pattern on the glacier grid when a pattern was given.
    """

    glacier: str
    grid_crs: str
    grid_extent: tuple[float, float, float, float]
    resolution_m: float
    footprints: list[Footprint]
    raw_sar_name: str
    raw_sar_crs: str
    raw_sar_extent: tuple[float, float, float, float]
    raw_sar_resolution_m: float
    raw_sar_db: np.ndarray
    raw_optical_name: str
    raw_optical_crs: str
    raw_optical_extent: tuple[float, float, float, float]
    raw_optical_resolution_m: float
    raw_scl: np.ndarray
    sar_file: str
    sar: np.ndarray
    optical_file: str
    rgb: np.ndarray
    scl: np.ndarray
    truth_db: np.ndarray | None = None
    truth_scl: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def _extent(transform: Any, shape: tuple[int, int]) -> tuple[float, float, float, float]:
    h, w = shape
    xs = [transform.c, transform.c + w * transform.a]
    ys = [transform.f, transform.f + h * transform.e]
    return min(xs), max(xs), min(ys), max(ys)


def _crs_name(crs: Any) -> str:
    epsg = crs.to_epsg() if crs is not None else None
    return f"EPSG:{epsg}" if epsg else (crs.to_string() if crs is not None else "none")


def _in_pattern_crs(x: np.ndarray, y: np.ndarray, src: Any, pattern_crs: str) -> tuple[np.ndarray, np.ndarray]:
    from pyproj import CRS as PCRS
    from pyproj import Transformer

    if PCRS.from_user_input(src) == PCRS.from_user_input(pattern_crs):
        return x, y
    tx, ty = Transformer.from_crs(src, pattern_crs, always_xy=True).transform(x.ravel(), y.ravel())
    return np.asarray(tx).reshape(x.shape), np.asarray(ty).reshape(y.shape)


def _read_band(path: Path, index: int = 1) -> tuple[np.ndarray, Any, Any, float | None]:
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            return src.read(index), src.transform, src.crs, src.nodatavals[index - 1]


def _band_index(path: Path, name: str) -> int:
    import rasterio

    from ssl4sar.data.construct import S2_BANDS

    with rasterio.open(path) as src:
        desc = [d.upper() if d else "" for d in src.descriptions]
    if name in desc:
        return desc.index(name) + 1
    if len(desc) >= len(S2_BANDS):
        return S2_BANDS.index(name) + 1
    raise DataError(path, f"no band {name} (band descriptions: {desc})", "the constructed optical image is broken")


def coregistration_example(raw_sar_dir: str | Path, raw_optical_dir: str | Path, aoi_path: str | Path,
                           constructed_dir: str | Path, glacier: str | None = None,
                           pattern: _Pattern | None = None) -> CoregistrationExample:
    """Collect what :func:`ssl4sar.data.construct.construct_ssl4sar` read and wrote for one glacier.

    ``glacier`` defaults to the first glacier of the manifest with an optical image. Chooses the glacier's first
    constructed SAR image whose source scene is in a different pixel grid from the glacier grid when there is one
    (the interesting case), and the first Sentinel-2 scene of the glacier's optical mosaic. Footprints of every
    readable raw scene (also the ones that were skipped) are given in the glacier grid's CRS. With ``pattern`` (the
    :class:`ssl4sar.data.synthetic.RawPattern` of synthetic raw scenes) the true σ⁰ and SCL on the glacier grid are
    added.
    """
    from ssl4sar.data.construct import (
        ConstructionManifest,
        read_aois,
        resolve_sar_units,
        sar_to_db,
        scan_optical,
        scan_sar,
    )

    out = Path(constructed_dir)
    manifest = ConstructionManifest.read(out)
    if not manifest.rows:
        raise DataError(out / "manifest.csv", "the construction wrote no output", "see manifest_skipped.csv")
    optical_rows = [r for r in manifest.rows if r["sensor"] == "S2"]
    if glacier is None:
        if not optical_rows:
            raise DataError(out / "manifest.csv", "no optical output in the manifest")
        glacier = optical_rows[0]["glacier"]
    if glacier not in manifest.grids:
        raise DataError(out / "grids.json", f"no grid for glacier {glacier!r} (grids: {', '.join(manifest.grids)})")
    grid = manifest.grids[glacier]
    sar_rows = [r for r in manifest.rows if r["glacier"] == glacier and r["sensor"] != "S2"]
    opt_row = next((r for r in optical_rows if r["glacier"] == glacier), None)
    if not sar_rows or opt_row is None:
        raise DataError(out / "manifest.csv", f"glacier {glacier}: needs a constructed SAR and optical image")

    sar_scenes = {s.path.name: s for s in scan_sar(raw_sar_dir)}
    opt_scenes = {o.key: o for o in scan_optical(raw_optical_dir)}

    def regridded(row: Mapping[str, str]) -> bool:
        """True when the raw scene is not on the glacier grid's pixel lattice (other CRS, spacing or offset)."""
        s = sar_scenes.get(row["source"])
        if s is None:
            return False
        t, g = s.transform, grid.transform
        if s.crs != grid.crs or not np.allclose([t.a, t.e, t.b, t.d], [g.a, g.e, g.b, g.d]):
            return True
        off = np.array([(t.c - g.c) / g.a, (t.f - g.f) / g.e])
        return not np.allclose(off, np.round(off), atol=1e-6)

    sar_row = next((r for r in sar_rows if regridded(r)), sar_rows[0])
    raw_sar = sar_scenes.get(sar_row["source"])
    if raw_sar is None:
        raise DataError(Path(raw_sar_dir) / sar_row["source"], "raw SAR scene of the manifest not found")
    values, transform, crs, nodata = _read_band(raw_sar.path)
    values = values.astype(np.float64)
    invalid = ~np.isfinite(values) | ((values == nodata) if nodata is not None else False)
    unit = resolve_sar_units("auto", raw_sar.dtype, raw_sar.hint, values[~invalid])
    if unit in ("uint8", "dn"):
        raw_db = np.where(invalid, np.nan, values)
    else:
        raw_db = sar_to_db(values, unit, invalid)
        raw_db = np.where(invalid | ~np.isfinite(raw_db), np.nan, raw_db)

    key = opt_row["source"].split(";")[0]
    scene = opt_scenes.get(key)
    if scene is None or "SCL" not in scene.bands:
        raise DataError(Path(raw_optical_dir), f"raw Sentinel-2 scene {key} (with an SCL band) not found")
    band = scene.bands["SCL"]
    raw_scl, o_transform, o_crs, _ = _read_band(band.path, band.index)

    sar, _, _, _ = _read_band(out / sar_row["file"])
    opath = out / opt_row["file"]
    rgb = np.stack([_read_band(opath, _band_index(opath, b))[0] for b in ("B4", "B3", "B2")], axis=-1)
    scl, _, _, _ = _read_band(opath, _band_index(opath, "SCL"))
    rgb = rgb.astype(np.float32) / 10000.0

    footprints: list[Footprint] = []
    used_sar = {r["source"] for r in sar_rows}
    used_opt = set(opt_row["source"].split(";"))
    for s in sar_scenes.values():
        geom = _to_grid_crs(s.footprint, s.crs, grid.crs)
        footprints.append(Footprint(s.path.name, "sar", geom, s.path.name in used_sar))
    for o in opt_scenes.values():
        footprints.append(Footprint(o.key, "optical", o.footprint_in(grid.crs), o.key in used_opt))
    for aoi in read_aois(aoi_path):
        if aoi.name == glacier:
            footprints.append(Footprint(f"area of interest {glacier}", "aoi", aoi.in_crs(grid.crs), True))
    from shapely.geometry import box

    footprints.append(Footprint(f"grid {glacier}", "grid", box(*grid.bounds), True))

    ex = CoregistrationExample(
        glacier=glacier, grid_crs=_crs_name(grid.crs), grid_extent=_extent(grid.transform, grid.shape),
        resolution_m=grid.resolution_m, footprints=footprints,
        raw_sar_name=raw_sar.path.name, raw_sar_crs=_crs_name(crs), raw_sar_extent=_extent(transform, values.shape),
        raw_sar_resolution_m=float(abs(transform.a)), raw_sar_db=raw_db.astype(np.float32),
        raw_optical_name=band.path.name, raw_optical_crs=_crs_name(o_crs),
        raw_optical_extent=_extent(o_transform, raw_scl.shape), raw_optical_resolution_m=float(abs(o_transform.a)),
        raw_scl=raw_scl, sar_file=sar_row["file"], sar=sar, optical_file=opt_row["file"], rgb=rgb, scl=scl)
    if unit != "db":
        ex.notes.append(f"{raw_sar.path.name} stores σ⁰ as {unit}; shown converted to dB")
    if pattern is not None:
        x, y = grid.pixel_centres()
        px, py = _in_pattern_crs(x, y, grid.crs, pattern.crs)
        ex.truth_db = pattern.sigma0_db(px, py).astype(np.float32)
        ex.truth_scl = pattern.scl(px, py)
    return ex


def _to_grid_crs(geom: Any, src: Any, dst: Any) -> Any:
    import shapely
    from pyproj import Transformer
    from shapely.ops import transform as shapely_transform

    if src == dst:
        return geom
    minx, miny, maxx, maxy = geom.bounds
    geom = shapely.segmentize(geom, max_segment_length=max(maxx - minx, maxy - miny, 1.0) / 32.0)
    tr = Transformer.from_crs(src, dst, always_xy=True)
    return shapely_transform(lambda xx, yy, zz=None: tr.transform(xx, yy), geom)


def coregistration_residuals(constructed_dir: str | Path, pattern: _Pattern,
                             db_range: tuple[float, float] | None = None) -> pd.DataFrame:
    """How far each constructed image lies from the known ``pattern`` of synthetic raw scenes.

    For every SAR output: its 8-bit values mapped back to dB (``dB = lo + (DN − 1)·(hi − lo)/254``, the inverse of
    the construction's scaling, ``db_range`` = its default −30 … +5 dB) against ``pattern.sigma0_db`` at the pixel
    centres. For every optical output: band B4 reflectance (DN / 10000) against ``pattern.reflectance('B4')``, and
    the share of pixels whose SCL code equals ``pattern.scl``. Columns: ``file``, ``glacier``, ``sensor``,
    ``valid_px``, ``quantity``, ``median_abs_error``, ``p95_abs_error``, ``shift_1px_error`` (the median absolute
    change of the truth itself under a shift by one grid pixel along x: the error a one-pixel misregistration would
    cause), ``scl_agreement``. Errors are in dB for SAR and reflectance units (0–1) for B4.
    """
    import rasterio

    from ssl4sar.data.construct import DEFAULT_DB_RANGE, ConstructionManifest

    lo, hi = db_range or DEFAULT_DB_RANGE
    out = Path(constructed_dir)
    manifest = ConstructionManifest.read(out)
    rows = []
    for r in manifest.rows:
        grid = manifest.grids.get(r["glacier"])
        if grid is None:
            continue
        x, y = grid.pixel_centres()
        px, py = _in_pattern_crs(x, y, grid.crs, pattern.crs)
        sx, sy = _in_pattern_crs(x + grid.resolution_m, y, grid.crs, pattern.crs)
        path = out / r["file"]
        with rasterio.open(path) as src:
            if r["sensor"] == "S2":
                desc = [d.upper() if d else "" for d in src.descriptions]
                b4 = src.read(desc.index("B4") + 1 if "B4" in desc else 4).astype(np.float64)
                scl = src.read(desc.index("SCL") + 1 if "SCL" in desc else 15)
                valid = b4 > 0
                got, truth = b4 / 10000.0, pattern.reflectance("B4", px, py)
                shifted = pattern.reflectance("B4", sx, sy)
                agree = float((scl[valid] == pattern.scl(px, py)[valid]).mean()) if valid.any() else float("nan")
                quantity = "B4 reflectance"
            else:
                dn = src.read(1).astype(np.float64)
                valid = dn > 0
                got = lo + (dn - 1.0) * (hi - lo) / 254.0
                truth, shifted = pattern.sigma0_db(px, py), pattern.sigma0_db(sx, sy)
                agree = float("nan")
                quantity = "sigma0 (dB)"
        err = np.abs(got - truth)[valid]
        rows.append({"file": r["file"], "glacier": r["glacier"], "sensor": r["sensor"], "valid_px": int(valid.sum()),
                     "quantity": quantity,
                     "median_abs_error": float(np.median(err)) if err.size else float("nan"),
                     "p95_abs_error": float(np.percentile(err, 95)) if err.size else float("nan"),
                     "shift_1px_error": float(np.median(np.abs(shifted - truth)[valid])) if err.size else float("nan"),
                     "scl_agreement": agree})
    return pd.DataFrame(rows, columns=["file", "glacier", "sensor", "valid_px", "quantity", "median_abs_error",
                                       "p95_abs_error", "shift_1px_error", "scl_agreement"])
