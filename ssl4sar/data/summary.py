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
* :func:`source_note`, :func:`validation_split_note` — what the data chapter says about the data a run read;
* :func:`construction_table`, :func:`construction_skips` — a construction manifest for the page (file names, not
  the machine's paths), and the skipped inputs next to the defects a test generator built in;
* :func:`gradient_histogram_frame` — per-class gradient-magnitude histograms of SAR patches (realism check);
* :func:`coregistration_example`, :func:`coregistration_residuals` — what :func:`ssl4sar.data.construct
  .construct_ssl4sar` did to raw scenes, and how far its output lies from a known truth pattern (they live in
  :mod:`ssl4sar.data.coregistration` and are re-exported here).

Units: coordinates in degrees (latitude north positive, longitude east positive), sizes in pixels
(``*_px``), pixel spacing in metres per pixel (``resolution_m``), σ⁰ in dB.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import UnidentifiedImageError

from ssl4sar.data import caffe
from ssl4sar.data.coregistration import (
    CoregistrationExample,
    Footprint,
    coregistration_example,
    coregistration_residuals,
)
from ssl4sar.data.raster import open_image, read_raster_info
from ssl4sar.data.realism import gradient_histogram_frame  # re-exported: the realism module owns it
from ssl4sar.domain import display_step, downsample_for_display
from ssl4sar.errors import DataError

__all__ = [
    "GlacierLocation", "GLACIER_LOCATIONS", "glacier_table", "glacier_code", "PAPER_FACTS", "paper_facts",
    "SPLIT_ORDER", "caffe_inventory", "count_table", "caffe_examples",
    "unlabeled_inventory", "optical_inventory", "unlabeled_counts",
    "gradient_histogram_frame",
    "source_note", "validation_split_note", "construction_table", "construction_skips",
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
# what the data chapter says about a run's data
# ---------------------------------------------------------------------------------------------------------------------

def source_note(name: str, root: str | Path, *, synthetic: bool, preset: str, seed: int) -> str:
    """Markdown: which ``name`` data (``"CaFFe"``, ``"SSL4SAR"``) a run reads from ``root`` (show a path relative to
    the work folder), and, for synthetic data, that the counts describe the synthetic set."""
    if synthetic:
        return (f"**This run reads synthetic {name} data** generated by `ssl4sar.data.synthetic` (preset "
                f"`{preset}`, seed {seed}) in `{root}`: the counts below describe that synthetic set, not the real "
                "data. The published numbers are in the table after them.")
    return f"This run reads the {name} data in `{root}`."


def validation_split_note(inventory: pd.DataFrame, n_train: int = caffe.CAFFE_N_TRAIN) -> str:
    """How the official validation rule applies to a run's train folder (:func:`caffe_inventory` rows): the official
    split (first ten indices) and whether this folder holds the ``n_train`` CaFFe images or which stems it picks."""
    official = caffe.validation_indices(n_train)
    lines = [f"official split: {len(official)} validation / {n_train - len(official)} training images; validation "
             f"indices into the sorted {n_train} names start with {official[:10].tolist()}"]
    n_trainval = int((inventory["split"] != "test").sum())
    val_stems = inventory.loc[inventory["split"] == "val", "stem"].tolist()
    if n_trainval == n_train:
        lines.append(f"this run's train folder holds the {n_train} CaFFe images: the validation images are the "
                     "official ones")
    else:
        lines.append(f"this run's train folder holds {n_trainval} images, not {n_train}: the same rule picks "
                     f"{len(val_stems)} of them for validation ({', '.join(val_stems)})")
    return "\n".join(lines)


def construction_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The written files of a construction manifest (``ConstructionManifest.rows``) for a page: file (its name holds
    glacier, sensor and date), resolution (m/px), valid fraction, split and the source scene's file name (not its
    full path)."""
    columns = ["file", "resolution_m", "valid_fraction", "split", "source"]
    table = pd.DataFrame(list(rows)).reindex(columns=columns)
    table["source"] = table["source"].map(lambda s: Path(str(s)).name if isinstance(s, str) and s else s)
    return table


def construction_skips(skipped: Sequence[Mapping[str, Any]], defects: Mapping[str, str]
                       ) -> tuple[pd.DataFrame, list[str]]:
    """Skipped inputs of a construction (``ConstructionManifest.skipped``) beside the defect built into each
    (``defects``: file name → defect, e.g. ``RawScenes.bad``; ``—`` where none was built in).

    Returns ``(table with source as a file name (or ``aoi:<glacier>``), kind, glacier, reason, built-in defect;
    sorted file names of defective inputs that were NOT skipped)``.
    """
    table = pd.DataFrame(list(skipped)).reindex(columns=["source", "kind", "glacier", "reason"])
    table["source"] = table["source"].map(lambda s: s if str(s).startswith("aoi:") else Path(str(s)).name)
    table["built-in defect"] = table["source"].map(dict(defects)).fillna("—")
    return table, sorted(set(defects) - set(table["source"]))
