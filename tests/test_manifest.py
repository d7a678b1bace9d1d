"""The data manifest: the shipped data_manifest.yaml, schema validation, local paths and presence; environment.yml."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from ssl4sar.data.manifest import (
    Resource,
    default_manifest_path,
    format_size,
    is_present,
    load_manifest,
    local_path,
    marker_path,
    parse_manifest,
    status,
)
from ssl4sar.errors import DataError

REPO = Path(__file__).resolve().parent.parent


def _doc(**fields: Any) -> dict[str, Any]:
    entry = {"kind": "file", "urls": ["https://example.org/w.pth"], "sha256": "a" * 64, "path": "weights/w.pth",
             "license": "MIT", "citation": "Someone (2022)"}
    entry.update(fields)
    return {"version": 1, "resources": {"weights": {k: v for k, v in entry.items() if v is not ...}}}


# ------------------------------------------------------------------------------------------ the shipped manifest


def test_package_manifest_is_a_copy_of_the_repository_manifest():
    """The package reads its own copy (it works from a wheel); data_manifest.yaml at the root is the source."""
    source = (REPO / "data_manifest.yaml").read_bytes()
    copy = (REPO / "ssl4sar" / "data" / "data_manifest.yaml").read_bytes()
    assert copy == source, ("ssl4sar/data/data_manifest.yaml differs from data_manifest.yaml: edit the root file, "
                            "then run `make sync` (or: python tools/sync.py) to copy it into the package")


def test_shipped_manifest_loads_and_names_every_resource(monkeypatch):
    monkeypatch.delenv("SSL4SAR_MANIFEST", raising=False)
    assert default_manifest_path() == REPO / "ssl4sar" / "data" / "data_manifest.yaml"
    manifest = load_manifest()
    assert manifest.names() == ["caffe", "caffe-meta", "ssl4sar", "swinv2-tiny-imagenet", "synthetic-demo"]

    caffe = manifest["caffe"]
    assert caffe.kind == "archive" and caffe.archive_format == "zip" and caffe.filename == "data_raw.zip"
    assert caffe.urls[0] == "https://download.pangaea.de/dataset/940950/files/data_raw.zip"
    assert caffe.doi == "10.1594/PANGAEA.940950" and caffe.license == "CC-BY-4.0"
    assert {"sar_images/train", "sar_images/test", "zones/train", "zones/test", "fronts/train", "fronts/test",
            "bounding_boxes"} == set(caffe.layout)
    assert 2.8e9 < caffe.expected_size_bytes < 2.9e9

    weights = manifest["swinv2-tiny-imagenet"]
    assert weights.urls[0].endswith("/v2.0.0/swinv2_tiny_patch4_window16_256.pth")
    assert Path(weights.path).name == weights.filename == "swinv2_tiny_patch4_window16_256.pth"

    unlabeled = manifest["ssl4sar"]
    assert unlabeled.doi == "10.5281/zenodo.14748506"
    assert not unlabeled.downloadable and unlabeled.landing_page == "https://zenodo.org/records/14748506"
    assert "could not be confirmed" in unlabeled.note

    demo = manifest["synthetic-demo"]
    assert (demo.kind, demo.generator, demo.preset) == ("generated", "ssl4sar.data.synthetic.generate", "demo")

    for resource in manifest:
        if resource.kind == "generated":
            continue
        assert resource.license and resource.citation, resource.name
        if resource.sha256 is None or resource.size_bytes is None:
            assert resource.note, f"{resource.name}: unknown sha256/size needs a note"


def test_manifest_path_from_environment(tmp_path, monkeypatch):
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(_doc()))
    monkeypatch.setenv("SSL4SAR_MANIFEST", str(path))
    assert load_manifest().source == path
    assert load_manifest()["weights"].sha256 == "a" * 64


# ------------------------------------------------------------------------------------------------- schema errors


@pytest.mark.parametrize(("fields", "needle"), [
    ({"kind": "zip"}, "entry 'weights', field 'kind'"),
    ({"sha256": "xyz"}, "entry 'weights', field 'sha256': expected 64 hexadecimal"),
    ({"sah256": "a" * 64}, "entry 'weights', field 'sah256': unknown field"),
    ({"path": "../outside"}, "entry 'weights', field 'path': must be relative"),
    ({"path": "/abs/w.pth"}, "entry 'weights', field 'path'"),
    ({"urls": ["ftp://example.org/w.pth"]}, "entry 'weights', field 'urls': expected http(s)"),
    ({"urls": [], "landing_page": ...}, "entry 'weights', field 'urls': empty"),
    ({"size_bytes": -5}, "entry 'weights', field 'size_bytes': expected a positive integer"),
    ({"sha256": None}, "entry 'weights', field 'sha256': null needs a 'note'"),
    ({"license": ...}, "entry 'weights', field 'license': required"),
    ({"path": ...}, "entry 'weights', field 'path': required"),
])
def test_schema_errors_name_entry_and_field(fields, needle, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_doc(**fields)))
    with pytest.raises(DataError) as info:
        load_manifest(path)
    assert needle in str(info.value)
    assert str(path) in str(info.value)


def test_archive_and_generated_schema_errors():
    archive = {"kind": "archive", "urls": ["https://example.org/a.rar"], "filename": "a.rar", "sha256": "b" * 64,
               "path": "a", "license": "x", "citation": "y"}
    with pytest.raises(DataError, match="entry 'a', field 'unpack.format'"):
        parse_manifest({"version": 1, "resources": {"a": archive}})
    archive_bad_layout = {**archive, "filename": "a.zip", "unpack": {"layout": ["../up"]}}
    with pytest.raises(DataError, match="entry 'a', field 'unpack.layout'"):
        parse_manifest({"version": 1, "resources": {"a": archive_bad_layout}})
    generated = {"kind": "generated", "generator": "pkg.mod.fn", "preset": "huge", "path": "g"}
    with pytest.raises(DataError, match="entry 'g', field 'preset'"):
        parse_manifest({"version": 1, "resources": {"g": generated}})
    with pytest.raises(DataError, match="entry 'g', field 'layouts'"):
        parse_manifest({"version": 1, "resources": {"g": {**generated, "preset": "demo", "layouts": ["mars"]}}})
    with pytest.raises(DataError, match="field 'version'"):
        parse_manifest({"version": 2, "resources": {"g": generated}})
    with pytest.raises(DataError, match="no resource named 'nope'"):
        parse_manifest({"version": 1, "resources": {"a": {**archive, "filename": "a.tar.gz"}}})["nope"]


def test_archive_format_inferred_from_file_name():
    entry = {"kind": "archive", "urls": ["https://example.org/x.tgz"], "filename": "x.tgz", "sha256": "c" * 64,
             "path": "x", "license": "x", "citation": "y"}
    assert parse_manifest({"version": 1, "resources": {"x": entry}})["x"].archive_format == "tar.gz"


def test_missing_or_invalid_manifest_file(tmp_path):
    with pytest.raises(DataError, match="data manifest not found"):
        load_manifest(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("resources: [unclosed")
    with pytest.raises(DataError, match="not valid YAML"):
        load_manifest(bad)


# ------------------------------------------------------------------------------------------ local paths, presence


def test_local_path_marker_and_status_for_files(tmp_path):
    resource = parse_manifest(_doc())["weights"]
    assert local_path(resource, tmp_path) == tmp_path / "weights" / "w.pth"
    assert marker_path(resource, tmp_path) == tmp_path / "weights" / "w.pth.complete"
    assert status(resource, tmp_path) == "missing" and not is_present(resource, tmp_path)

    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "w.pth").write_bytes(b"copied by hand")
    assert status(resource, tmp_path) == "unverified"
    assert not is_present(resource, tmp_path) and is_present(resource, tmp_path, allow_unverified=True)

    marker_path(resource, tmp_path).write_text(json.dumps({"sha256": "a" * 64}))
    assert status(resource, tmp_path) == "present" and is_present(resource, tmp_path)

    # the manifest's sha256 changed (new upstream version): the old install no longer counts
    newer = parse_manifest(_doc(sha256="d" * 64))["weights"]
    assert status(newer, tmp_path) == "unverified" and not is_present(newer, tmp_path)


def test_status_of_folders_uses_the_layout(tmp_path):
    resource = Resource(name="caffe", kind="archive", path="caffe/data_raw", layout=("sar_images/train", "zones"))
    folder = local_path(resource, tmp_path)
    assert marker_path(resource, tmp_path) == folder / ".complete"
    (folder / "sar_images" / "train").mkdir(parents=True)
    assert status(resource, tmp_path) == "missing"  # half a layout is not an install
    (folder / "zones").mkdir()
    assert status(resource, tmp_path) == "unverified"
    (folder / ".complete").write_text("{not json")
    assert status(resource, tmp_path) == "unverified"  # unreadable marker is ignored
    (folder / ".complete").write_text(json.dumps({"sha256": "e" * 64}))
    assert status(resource, tmp_path) == "present"


def test_local_path_defaults_to_environment_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("SSL4SAR_DATA", str(tmp_path / "data"))
    resource = Resource(name="g", kind="generated", path="synthetic/demo")
    assert local_path(resource) == tmp_path / "data" / "synthetic" / "demo"


@pytest.mark.parametrize(("n", "approx", "text"), [
    (None, False, "?"), (512, False, "512 B"), (136_000, True, "~136 kB"), (2_860_000_000, True, "~2.86 GB"),
    (115_000_000, False, "115 MB"),
])
def test_format_size(n, approx, text):
    assert format_size(n, approximate=approx) == text


# ------------------------------------------------------------------------------------------------ environment.yml


def test_environment_yml_matches_the_lock_file():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["name"] == "ssl4sar"
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python == "python=3.11" and requires == ">=3.11"
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert "-r requirements/lock.txt" in pip_section and "-e ." in pip_section
    lock = dict(line.split("==") for line in (REPO / "requirements/lock.txt").read_text().split() if "==" in line)
    # versions quoted in the explanatory comment must be the locked ones
    comment = "\n".join(line for line in (REPO / "environment.yml").read_text().splitlines() if line.startswith("#"))
    quoted = re.findall(r"\b([a-z][\w-]*) (\d+\.\d+\.\d+)\b", comment)
    assert len(quoted) >= 5
    for name, version in quoted:
        assert lock.get(name) == version, f"environment.yml mentions {name} {version}, the lock pins {lock.get(name)}"
