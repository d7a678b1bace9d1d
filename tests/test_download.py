"""Checksummed, atomic downloads (ssl4sar.data.download) against a local HTTP server — never the internet."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import shutil
import sys
import tarfile
import threading
import types
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from ssl4sar.data import download, transfer
from ssl4sar.data.download import fetch, read_lock, sha256sum
from ssl4sar.data.manifest import load_manifest, marker_path, status
from ssl4sar.errors import ChecksumError, DataError

LAYOUT = ["sar_images/train", "sar_images/test", "zones/train", "bounding_boxes"]
MEMBERS = {
    "sar_images/train/Crane_2002-11-09_ERS_20_2_061.png": b"\x89PNG train image bytes",
    "sar_images/test/Mapple_2008-10-16_ENVISAT_20_2_238.png": b"\x89PNG test image bytes",
    "zones/train/Crane_2002-11-09_ERS_20_2_061_zones.png": b"\x89PNG zones",
    "bounding_boxes/Crane_2002-11-09_ERS_20_2_061_front_extent_coord.txt": b"x,y\n1,2\n1,0\n5,0\n5,2\n",
}


# ------------------------------------------------------------------------------------------------- test HTTP server


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.routes[path] = (mode, body)``; mode "ok", "truncate" (announces more bytes), "cut" (no
    Content-Length, closes after half the body), "unsized" (no Content-Length, whole body), "ranged" (see
    :meth:`_ranged`) or an HTTP code."""

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        self.server.ranges.append(self.headers.get("Range"))  # type: ignore[attr-defined]
        mode, body = self.server.routes.get(self.path, (404, b""))  # type: ignore[attr-defined]
        if isinstance(mode, int):
            self.send_error(mode)
            return
        if mode == "ranged":
            self._ranged(body)
            return
        if mode == "gzip":  # a server that compresses whatever the client asked for
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if mode in ("cut", "unsized"):  # no Content-Length: the body ends when the connection closes
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if mode == "cut" else body)
            self.wfile.flush()
            self.close_connection = True
            return
        announced = len(body) + (100_000 if mode == "truncate" else 0)
        self.send_header("Content-Length", str(announced))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def _ranged(self, body: bytes) -> None:
        """Like a static file server: an ETag (``server.etags[path]``, default ``"v1"``), ``Range: bytes=N-``
        answered with 206 while ``If-Range`` matches the ETag; ``server.cuts[path] = n`` closes the next response
        after n bytes of its body (once); ``server.bad_range`` answers ranges from the wrong byte."""
        srv = self.server
        etag = srv.etags.get(self.path, '"v1"')  # type: ignore[attr-defined]
        asked, if_range = self.headers.get("Range"), self.headers.get("If-Range")
        start = 0
        if asked and if_range in (None, etag):
            start = int(asked.removeprefix("bytes=").rstrip("-"))
            shown = start + 1 if srv.bad_range else start  # type: ignore[attr-defined]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {shown}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("ETag", etag)
        self.end_headers()
        cut = srv.cuts.pop(self.path, None)  # type: ignore[attr-defined]
        self.wfile.write(body[start:] if cut is None else body[start:start + cut])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # silence the server
        pass


@pytest.fixture()
def server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.routes = {}  # type: ignore[attr-defined]
    srv.hits = []  # type: ignore[attr-defined]
    srv.ranges = []  # type: ignore[attr-defined]
    srv.etags, srv.cuts, srv.bad_range = {}, {}, False  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def url_of(srv: ThreadingHTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


# ------------------------------------------------------------------------------------------------------- helpers


def file_entry(url: str, path: str, sha256: str | None = None, **fields: Any) -> dict[str, Any]:
    """A manifest entry of ``kind: file`` downloaded from ``url`` to ``path`` (no checksum unless given)."""
    return {"kind": "file", "urls": [url], "sha256": sha256, "path": path, **fields}


def make_zip(members: dict[str, bytes], prefix: str = "data_raw/") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(prefix + name, data)
    return buf.getvalue()


def make_targz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_manifest(path: Path, **entries: dict[str, Any]) -> Path:
    resources = {}
    for name, fields in entries.items():
        base: dict[str, Any] = {"license": "CC-BY-4.0", "citation": "Test et al. (2024)", "note": "test entry"}
        base.update(fields)
        resources[name] = base
    path.write_text(yaml.safe_dump({"version": 1, "resources": resources}))
    return path


def archive_entry(urls: list[str], sha256: str | None, filename: str = "data_raw.zip", **extra: Any) -> dict[str, Any]:
    entry = {"kind": "archive", "urls": urls, "filename": filename, "sha256": sha256, "path": "caffe/data_raw",
             "unpack": {"layout": LAYOUT}}
    entry.update(extra)
    return entry


def leftovers(root: Path) -> list[Path]:
    """Temporary files/folders of the downloader (dot-prefixed, except markers)."""
    return [p for p in root.rglob(".*") if p.name != ".complete" and not p.name.endswith(".complete")]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------------------- tests


def test_fetch_archive_verified_unpacked_and_marked(server, tmp_path):
    body = make_zip(MEMBERS)
    server.routes["/data_raw.zip"] = ("ok", body)
    url = url_of(server, "/data_raw.zip")
    manifest = write_manifest(tmp_path / "m.yaml", caffe=archive_entry([url], sha(body), size_bytes=len(body)))
    root = tmp_path / "root"

    path = fetch("caffe", dest=root, manifest=manifest, progress=False)

    assert path == root / "caffe" / "data_raw"
    for name, data in MEMBERS.items():  # the data_raw/ wrapper of the zip was found through the layout
        assert (path / name).read_bytes() == data
    marker = json.loads((path / ".complete").read_text())
    assert marker["sha256"] == sha(body)
    assert marker["url"] == url
    assert marker["size_bytes"] == len(body)
    assert marker["sha256_source"] == "manifest"
    assert status(load_manifest(manifest)["caffe"], root) == "present"
    assert not (root / "downloads" / "data_raw.zip").exists()  # archive removed after unpacking
    assert leftovers(root) == []
    assert not (root / "manifest.lock.json").exists()  # nothing to trust on first use: sha256 was known

    # a second call finds it present and makes no request
    hits = len(server.hits)
    assert fetch("caffe", dest=root, manifest=manifest, progress=False) == path
    assert len(server.hits) == hits


def test_fetch_targz_without_wrapper_and_keep_archive(server, tmp_path):
    body = make_targz(MEMBERS)
    server.routes["/ssl.tar.gz"] = ("ok", body)
    entry = archive_entry([url_of(server, "/ssl.tar.gz")], sha(body), filename="ssl.tar.gz")
    manifest = write_manifest(tmp_path / "m.yaml", caffe=entry)
    root = tmp_path / "root"
    path = fetch("caffe", dest=root, manifest=manifest, progress=False, keep_archive=True)
    assert sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) == sorted(
        [*MEMBERS, ".complete"])
    assert sha256sum(root / "downloads" / "ssl.tar.gz") == sha(body)


def test_wrong_sha256_raises_checksum_error_and_installs_nothing(server, tmp_path):
    body = make_zip(MEMBERS)
    server.routes["/data_raw.zip"] = ("ok", body)
    url = url_of(server, "/data_raw.zip")
    wrong = sha(b"something else")
    manifest = write_manifest(tmp_path / "m.yaml", caffe=archive_entry([url], wrong))
    root = tmp_path / "root"
    with pytest.raises(ChecksumError) as info:
        fetch("caffe", dest=root, manifest=manifest, progress=False)
    message = str(info.value)
    assert "'caffe'" in message and url in message and "sha256 mismatch" in message
    assert sha(body) in message and wrong in message
    assert not (root / "caffe").exists()
    assert list((root / "downloads").iterdir()) == []
    assert not (root / "manifest.lock.json").exists()


def test_truncated_transfer_is_a_clear_error_and_leaves_nothing(server, tmp_path):
    body = make_zip(MEMBERS)
    server.routes["/data_raw.zip"] = ("truncate", body)
    url = url_of(server, "/data_raw.zip")
    manifest = write_manifest(tmp_path / "m.yaml", caffe=archive_entry([url], None))
    root = tmp_path / "root"
    with pytest.raises(DataError) as info:
        fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert not isinstance(info.value, ChecksumError)
    message = str(info.value)
    assert "truncated transfer" in message and url in message and "'caffe'" in message
    assert str(len(body) + 100_000) in message  # the announced Content-Length
    assert not (root / "caffe").exists()
    assert list((root / "downloads").iterdir()) == []
    assert "caffe" not in read_lock(root)  # a failed download is never trusted


def test_http_404_is_a_clear_error(server, tmp_path):
    url = url_of(server, "/missing.zip")
    manifest = write_manifest(tmp_path / "m.yaml", caffe=archive_entry([url], None, filename="missing.zip"))
    root = tmp_path / "root"
    with pytest.raises(DataError, match=r"HTTP 404") as info:
        fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert url in str(info.value)
    assert not (root / "caffe").exists()
    assert leftovers(root) == []


def test_mirrors_are_tried_in_order(server, tmp_path):
    body = make_zip(MEMBERS)
    server.routes["/mirror2/data_raw.zip"] = ("ok", body)
    urls = [url_of(server, "/gone/data_raw.zip"), url_of(server, "/mirror2/data_raw.zip")]
    manifest = write_manifest(tmp_path / "m.yaml", caffe=archive_entry(urls, sha(body)))
    path = fetch("caffe", dest=tmp_path / "root", manifest=manifest, progress=False)
    assert server.hits == ["/gone/data_raw.zip", "/mirror2/data_raw.zip"]
    assert json.loads((path / ".complete").read_text())["url"] == urls[1]


def test_rerun_after_failure_succeeds(server, tmp_path):
    body = make_zip(MEMBERS)
    server.routes["/data_raw.zip"] = ("truncate", body)
    manifest = write_manifest(tmp_path / "m.yaml", caffe=archive_entry([url_of(server, "/data_raw.zip")], sha(body)))
    root = tmp_path / "root"
    with pytest.raises(DataError):
        fetch("caffe", dest=root, manifest=manifest, progress=False)
    # leftovers of a killed run (no cleanup at all) must not confuse the next one either
    (root / "downloads" / ".data_raw.zip.abc123.part").write_bytes(b"partial")
    (root / "caffe" / ".data_raw.unpack-xyz").mkdir(parents=True)
    server.routes["/data_raw.zip"] = ("ok", body)
    path = fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert (path / next(iter(MEMBERS))).read_bytes() == next(iter(MEMBERS.values()))
    assert leftovers(root) == []


def test_trust_on_first_use_is_recorded_then_enforced(server, tmp_path, caplog):
    body = make_zip(MEMBERS)
    server.routes["/data_raw.zip"] = ("ok", body)
    url = url_of(server, "/data_raw.zip")
    manifest = write_manifest(tmp_path / "m.yaml", caffe=archive_entry([url], None))
    root = tmp_path / "root"

    with caplog.at_level(logging.WARNING, logger="ssl4sar.data.download"):
        path = fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert any("trusting this first download" in r.getMessage() for r in caplog.records)
    lock = read_lock(root)
    assert lock["caffe"]["sha256"] == sha(body)
    assert lock["caffe"]["size_bytes"] == len(body)
    assert lock["caffe"]["url"] == url
    assert json.loads((path / ".complete").read_text())["sha256_source"] == "first-use"

    # the same bytes again: verified against the lock
    again = fetch("caffe", dest=root, manifest=manifest, progress=False, force=True)
    assert json.loads((again / ".complete").read_text())["sha256_source"] == "lock"

    # the server now delivers different bytes: refused, the installed copy stays intact
    marker_before = (path / ".complete").read_text()
    server.routes["/data_raw.zip"] = ("ok", make_zip({**MEMBERS, "zones/train/extra.png": b"new"}))
    with pytest.raises(ChecksumError, match="manifest.lock.json"):
        fetch("caffe", dest=root, manifest=manifest, progress=False, force=True)
    assert (path / ".complete").read_text() == marker_before
    assert not (path / "zones/train/extra.png").exists()
    assert read_lock(root)["caffe"]["sha256"] == sha(body)


def test_disk_full_is_reported_and_cleaned_up(server, tmp_path, monkeypatch):
    server.routes["/w.pth"] = ("ok", b"weights" * 100)

    def full_disk(response, fh, bar):
        fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(transfer, "_copy_body", full_disk)
    manifest = write_manifest(tmp_path / "m.yaml", weights=file_entry(url_of(server, "/w.pth"), "weights/w.pth"))
    root = tmp_path / "root"
    with pytest.raises(DataError, match="disk full") as info:
        fetch("weights", dest=root, manifest=manifest, progress=False)
    assert "'weights'" in str(info.value) and "/w.pth" in str(info.value)
    assert list((root / "weights").iterdir()) == []


def test_not_enough_space_is_refused_before_downloading(server, tmp_path):
    manifest = write_manifest(tmp_path / "m.yaml", caffe=archive_entry(
        [url_of(server, "/data_raw.zip")], None, approx_size_bytes=10**18))
    with pytest.raises(DataError, match="not enough disk space"):
        fetch("caffe", dest=tmp_path / "root", manifest=manifest, progress=False)
    assert server.hits == []


def test_fetch_single_file_with_sidecar_marker(server, tmp_path):
    body = b"\x00weights" * 1000
    server.routes["/swin.pth"] = ("ok", body)
    manifest = write_manifest(tmp_path / "m.yaml",
                              weights=file_entry(url_of(server, "/swin.pth"), "weights/swin.pth", sha256=sha(body),
                                                 size_bytes=len(body)))
    root = tmp_path / "root"
    path = fetch("weights", dest=root, manifest=manifest, progress=False)
    assert path == root / "weights" / "swin.pth"
    assert path.read_bytes() == body
    resource = load_manifest(manifest)["weights"]
    assert marker_path(resource, root) == root / "weights" / "swin.pth.complete"
    assert json.loads(marker_path(resource, root).read_text())["sha256"] == sha(body)


def test_failed_redownload_keeps_the_installed_file(server, tmp_path):
    body = b"first version of the weights"
    server.routes["/w.pth"] = ("ok", body)
    manifest = write_manifest(tmp_path / "m.yaml", weights=file_entry(url_of(server, "/w.pth"), "weights/w.pth"))
    root = tmp_path / "root"
    path = fetch("weights", dest=root, manifest=manifest, progress=False)
    marker = path.with_name("w.pth.complete").read_text()
    server.routes["/w.pth"] = ("ok", b"silently replaced upstream")
    with pytest.raises(ChecksumError, match="the lock file"):
        fetch("weights", dest=root, manifest=manifest, progress=False, force=True)
    assert path.read_bytes() == body
    assert path.with_name("w.pth.complete").read_text() == marker
    assert status(load_manifest(manifest)["weights"], root) == "present"
    assert leftovers(root) == []


def test_size_mismatch_is_rejected(server, tmp_path):
    body = b"0123456789"
    server.routes["/f.bin"] = ("ok", body)
    manifest = write_manifest(tmp_path / "m.yaml", f=file_entry(url_of(server, "/f.bin"), "f.bin", size_bytes=11))
    with pytest.raises(DataError, match="size mismatch: received 10 bytes"):
        fetch("f", dest=tmp_path / "root", manifest=manifest, progress=False)
    assert not (tmp_path / "root" / "f.bin").exists()


def test_archive_without_expected_layout_installs_nothing(server, tmp_path):
    body = make_zip({"something/else.txt": b"x"})
    server.routes["/data_raw.zip"] = ("ok", body)
    manifest = write_manifest(tmp_path / "m.yaml", caffe=archive_entry([url_of(server, "/data_raw.zip")], sha(body)))
    root = tmp_path / "root"
    with pytest.raises(DataError, match="expected layout") as info:
        fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert "sar_images/train" in str(info.value)
    assert not (root / "caffe" / "data_raw").exists()
    assert leftovers(root) == []


def test_unsafe_zip_member_is_refused(server, tmp_path):
    body = make_zip({"../escape.txt": b"x", **MEMBERS}, prefix="")
    server.routes["/data_raw.zip"] = ("ok", body)
    manifest = write_manifest(tmp_path / "m.yaml", caffe=archive_entry([url_of(server, "/data_raw.zip")], sha(body)))
    root = tmp_path / "root"
    with pytest.raises(DataError, match="unsafe member path"):
        fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert not (root / "caffe" / "escape.txt").exists() and not (root / "escape.txt").exists()
    assert not (root / "caffe" / "data_raw").exists()


def test_manual_resource_explains_what_to_do(tmp_path):
    manifest = write_manifest(tmp_path / "m.yaml", unlabeled={
        "kind": "archive", "urls": [], "path": "ssl4sar", "landing_page": "https://zenodo.org/records/1",
        "unpack": {"layout": ["unlabeled_data_raw_train", "data_optical"]}})
    with pytest.raises(DataError, match="no download URL") as info:
        fetch("unlabeled", dest=tmp_path / "root", manifest=manifest, progress=False)
    assert "https://zenodo.org/records/1" in str(info.value)
    assert "unlabeled_data_raw_train" in str(info.value)
    # once unpacked by hand (complete layout) it is accepted, unverified
    for sub in ("unlabeled_data_raw_train", "data_optical"):
        (tmp_path / "root" / "ssl4sar" / sub).mkdir(parents=True)
    assert fetch("unlabeled", dest=tmp_path / "root", manifest=manifest) == tmp_path / "root" / "ssl4sar"
    assert status(load_manifest(manifest)["unlabeled"], tmp_path / "root") == "unverified"


def test_unsafe_tar_member_is_refused(server, tmp_path):
    body = make_targz({"../../escape.txt": b"x", **MEMBERS})
    server.routes["/a.tar.gz"] = ("ok", body)
    manifest = write_manifest(tmp_path / "m.yaml", caffe=archive_entry(
        [url_of(server, "/a.tar.gz")], sha(body), filename="a.tar.gz"))
    root = tmp_path / "root"
    with pytest.raises(DataError, match="unsafe tar.gz archive"):
        fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert not (tmp_path / "escape.txt").exists() and not (root / "escape.txt").exists()
    assert not (root / "caffe" / "data_raw").exists()
    assert leftovers(root) == []


def test_generated_resource_runs_its_generator(tmp_path, monkeypatch):
    calls: list[tuple[Path, dict[str, Any]]] = []

    def generate(out_dir, **kwargs):
        calls.append((Path(out_dir), kwargs))
        (Path(out_dir) / "caffe").mkdir(parents=True)
        return {"caffe": Path(out_dir) / "caffe"}

    module = types.ModuleType("fake_ssl4sar_generator")
    module.generate = generate  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_ssl4sar_generator", module)
    manifest = write_manifest(tmp_path / "m.yaml", synth={
        "kind": "generated", "generator": "fake_ssl4sar_generator.generate", "preset": "smoke", "seed": 7,
        "layouts": ["caffe"], "path": "synthetic/smoke"})
    root = tmp_path / "root"
    # an interrupted earlier generation (no marker) is replaced
    (root / "synthetic" / "smoke" / "stale").mkdir(parents=True)
    path = fetch("synth", dest=root, manifest=manifest, progress=False)
    assert calls == [(root / "synthetic" / "smoke", {"preset": "smoke", "seed": 7, "layouts": ["caffe"]})]
    assert not (path / "stale").exists()
    marker = json.loads((path / ".complete").read_text())
    assert (marker["preset"], marker["seed"], marker["layouts"]) == ("smoke", 7, ["caffe"])
    assert fetch("synth", dest=root, manifest=manifest, progress=False) == path
    assert len(calls) == 1


def test_default_data_root_comes_from_environment(server, tmp_path, monkeypatch):
    body = b"metadata;csv\n"
    server.routes["/meta_data.csv"] = ("ok", body)
    manifest = write_manifest(tmp_path / "m.yaml",
                              meta=file_entry(url_of(server, "/meta_data.csv"), "caffe/meta_data.csv",
                                              sha256=sha(body)))
    monkeypatch.setenv("SSL4SAR_DATA", str(tmp_path / "envroot"))
    assert fetch("meta", manifest=manifest, progress=False) == tmp_path / "envroot" / "caffe" / "meta_data.csv"
    assert download.lock_path() == tmp_path / "envroot" / "manifest.lock.json"


def test_short_body_without_transport_error_is_detected(server, tmp_path, monkeypatch):
    """A transport that does not enforce Content-Length itself: the received size is still checked."""

    def short_read(response, fh, bar):
        fh.write(b"only ten b")  # and returns as if the body had ended

    monkeypatch.setattr(transfer, "_copy_body", short_read)
    server.routes["/f.bin"] = ("ok", b"x" * 1000)
    manifest = write_manifest(tmp_path / "m.yaml", f=file_entry(url_of(server, "/f.bin"), "f.bin"))
    with pytest.raises(DataError, match="truncated transfer: received 10 bytes, Content-Length announced 1000"):
        fetch("f", dest=tmp_path / "root", manifest=manifest, progress=False)
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == []


# ------------------------------------------------------------------------------------- issue 17: cut-off downloads


def test_cut_off_archive_without_content_length_is_not_installed_nor_trusted(server, tmp_path):
    body = make_zip({**MEMBERS, "zones/train/big.png": bytes(range(256)) * 400})
    server.routes["/data_raw.zip"] = ("cut", body)
    url = url_of(server, "/data_raw.zip")
    manifest = write_manifest(tmp_path / "m.yaml", caffe=archive_entry([url], None))
    root = tmp_path / "root"
    with pytest.raises(DataError, match=r"integrity check") as info:   # before the fix: installed, sha locked
        fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert ".part" not in str(info.value).split(":")[0]
    assert "caffe" not in read_lock(root)
    assert not (root / "caffe").exists()
    # the complete file is then accepted (it was rejected as a checksum mismatch before the fix)
    server.routes["/data_raw.zip"] = ("unsized", body)
    path = fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert read_lock(root)["caffe"]["sha256"] == sha(body)
    assert (path / "zones/train/big.png").stat().st_size == 256 * 400


def test_cut_off_file_without_any_known_size_is_refused(server, tmp_path):
    body = b"meta;data\n" * 500
    server.routes["/meta.csv"] = ("cut", body)
    manifest = write_manifest(tmp_path / "m.yaml", meta=file_entry(url_of(server, "/meta.csv"), "caffe/meta.csv"))
    root = tmp_path / "root"
    with pytest.raises(DataError, match=r"no Content-Length.*no size_bytes") as info:
        fetch("meta", dest=root, manifest=manifest, progress=False)
    assert str(info.value).startswith(str(root / "caffe" / "meta.csv") + ":")   # the target, not the .part file
    assert "meta" not in read_lock(root) and not (root / "caffe" / "meta.csv").exists()
    # with the manifest's size_bytes the same server is fine when it delivers everything
    server.routes["/meta.csv"] = ("unsized", body)
    manifest = write_manifest(tmp_path / "m.yaml",
                              meta=file_entry(url_of(server, "/meta.csv"), "caffe/meta.csv", size_bytes=len(body)))
    assert fetch("meta", dest=root, manifest=manifest, progress=False).read_bytes() == body


def test_lock_records_the_checksum_origin_and_a_mismatch_offers_the_way_out(server, tmp_path):
    body = b"first download" * 10
    server.routes["/w.pth"] = ("ok", body)
    manifest = write_manifest(tmp_path / "m.yaml", weights=file_entry(url_of(server, "/w.pth"), "weights/w.pth"))
    root = tmp_path / "root"
    fetch("weights", dest=root, manifest=manifest, progress=False)
    assert read_lock(root)["weights"]["sha256_source"] == "first-download"
    server.routes["/w.pth"] = ("ok", b"another file")
    with pytest.raises(ChecksumError) as info:
        fetch("weights", dest=root, manifest=manifest, progress=False, force=True)
    message = str(info.value)
    assert "recorded from the first download" in message and "no checksum is published" in message
    assert "ssl4sar data fetch weights --force" in message and "delete" in message


def test_fetched_files_get_normal_permissions(server, tmp_path):
    import os
    import stat

    body = b"weights" * 100
    server.routes["/w.pth"] = ("ok", body)
    manifest = write_manifest(tmp_path / "m.yaml",
                              weights=file_entry(url_of(server, "/w.pth"), "weights/w.pth", sha256=sha(body)))
    umask = os.umask(0o022)
    try:
        path = fetch("weights", dest=tmp_path / "root", manifest=manifest, progress=False)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644                # was 0600 (mkstemp) before the fix


def test_cut_off_archive_locked_by_an_older_version_is_not_reused(server, tmp_path):
    body = make_zip({**MEMBERS, "zones/train/big.png": bytes(range(256)) * 400})
    cut = body[: len(body) // 2]
    root = tmp_path / "root"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "data_raw.zip").write_bytes(cut)          # what the old code kept and locked
    (root / "manifest.lock.json").write_text(json.dumps({"version": 1, "resources": {"caffe": {
        "sha256": sha(cut), "size_bytes": len(cut), "filename": "data_raw.zip", "url": "x", "recorded": "then"}}}))
    server.routes["/data_raw.zip"] = ("ok", body)
    manifest = write_manifest(tmp_path / "m.yaml", caffe=archive_entry([url_of(server, "/data_raw.zip")], None))
    with pytest.raises(ChecksumError, match="recorded from the first download"):   # before: BadZipFile
        fetch("caffe", dest=root, manifest=manifest, progress=False, keep_archive=True)
    assert not (root / "caffe").exists()


# ------------------------------------------------------------------------------ cut-off downloads continue (stop 28)

BIG_MEMBERS = {**MEMBERS, "zones/train/big.png": bytes(range(256)) * 800}  # ~200 kB, stored


def big_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in BIG_MEMBERS.items():
            zf.writestr("data_raw/" + name, data)
    return buf.getvalue()


def cut_off_once(server, tmp_path: Path, body: bytes, entry) -> tuple[Path, Path]:
    """Serve ``body`` with ranges, cut the first response after 40,000 bytes and fetch once (which fails and keeps
    them); ``entry(url)`` is the manifest entry. Returns ``(manifest, data root)``."""
    server.routes["/data_raw.zip"] = ("ranged", body)
    server.cuts["/data_raw.zip"] = 40_000
    manifest = write_manifest(tmp_path / "m.yaml", caffe=entry(url_of(server, "/data_raw.zip")))
    root = tmp_path / "root"
    with pytest.raises(DataError, match=f"truncated transfer.*kept 40000 of {len(body)} bytes"):
        fetch("caffe", dest=root, manifest=manifest, progress=False)
    return manifest, root


@pytest.mark.parametrize("kind", ["archive", "file"])
def test_a_cut_off_download_continues_where_it_stopped(server, tmp_path, kind):
    body = big_zip()
    manifest, root = cut_off_once(server, tmp_path, body, lambda url: archive_entry([url], None) if kind == "archive"
                                  else file_entry(url, "weights/data_raw.zip"))
    folder = root / ("downloads" if kind == "archive" else "weights")
    assert (folder / ".data_raw.zip.resume.part").read_bytes() == body[:40_000]
    assert not (root / "caffe" / "data_raw").exists() and not (root / "weights" / "data_raw.zip").exists()
    assert "caffe" not in read_lock(root)  # nothing is trusted before the whole file passed every check

    path = fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert server.ranges == [None, "bytes=40000-"]  # the second request asked for the rest only
    if kind == "archive":
        assert (path / "zones/train/big.png").read_bytes() == BIG_MEMBERS["zones/train/big.png"]
    else:
        assert path.read_bytes() == body
    assert read_lock(root)["caffe"]["sha256"] == sha(body)
    assert leftovers(root) == []


def test_a_file_changed_on_the_server_is_downloaded_again_from_the_start(server, tmp_path):
    old, new = big_zip(), make_zip(MEMBERS)
    manifest, root = cut_off_once(server, tmp_path, old, lambda url: archive_entry([url], None))
    server.routes["/data_raw.zip"] = ("ranged", new)
    server.etags["/data_raw.zip"] = '"v2"'  # If-Range "v1" no longer matches: the server sends the whole new file
    path = fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert server.ranges == [None, "bytes=40000-"]
    assert not (path / "zones/train/big.png").exists()  # the new version's members only
    assert read_lock(root)["caffe"]["sha256"] == sha(new)
    assert leftovers(root) == []


def test_a_wrong_range_answer_discards_the_kept_bytes(server, tmp_path):
    body = big_zip()
    manifest, root = cut_off_once(server, tmp_path, body, lambda url: archive_entry([url], sha(body)))
    server.bad_range = True  # answers "bytes 40001-…" to a request for bytes 40000-
    with pytest.raises(DataError, match="Content-Range.*discarded"):
        fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert leftovers(root) == []
    server.bad_range = False
    fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert server.ranges == [None, "bytes=40000-", None]  # started again from byte 0


def test_an_error_to_a_range_request_discards_the_kept_bytes(server, tmp_path):
    body = big_zip()
    manifest, root = cut_off_once(server, tmp_path, body, lambda url: archive_entry([url], sha(body)))
    server.routes["/data_raw.zip"] = (416, b"")
    with pytest.raises(DataError, match="HTTP 416.*bytes 40000-.*discarded"):
        fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert leftovers(root) == []  # else every later run would ask for the same range again


def test_continued_bytes_that_fail_the_checksum_are_discarded(server, tmp_path):
    # a server that changes the file but not its ETag: the joined file is wrong, and the checksum says so
    body = big_zip()
    manifest, root = cut_off_once(server, tmp_path, body,
                                  lambda url: file_entry(url, "weights/w.bin", sha256=sha(body)))
    server.routes["/data_raw.zip"] = ("ranged", body[:50_000] + bytes(len(body) - 50_000))
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert leftovers(root) == []
    assert not (root / "weights" / "w.bin").exists()


def test_ctrl_c_keeps_the_bytes_for_the_next_run(server, tmp_path, monkeypatch):
    body = big_zip()
    server.routes["/data_raw.zip"] = ("ranged", body)
    url = url_of(server, "/data_raw.zip")
    manifest = write_manifest(tmp_path / "m.yaml", caffe=archive_entry([url], sha(body)))
    root = tmp_path / "root"
    real = transfer._copy_body

    def interrupted(response, fh, bar):
        fh.write(next(response.iter_content(chunk_size=30_000)))
        raise KeyboardInterrupt

    monkeypatch.setattr(transfer, "_copy_body", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert (root / "downloads" / ".data_raw.zip.resume.part").stat().st_size == 30_000
    monkeypatch.setattr(transfer, "_copy_body", real)
    fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert server.ranges == [None, "bytes=30000-"]
    assert leftovers(root) == []


def test_without_a_validator_a_cut_off_transfer_keeps_nothing(server, tmp_path, monkeypatch):
    # "truncate": the server announces a size but no ETag / Last-Modified, so a range could join two versions
    server.routes["/data_raw.zip"] = ("truncate", make_zip(MEMBERS))
    manifest = write_manifest(tmp_path / "m.yaml", caffe=archive_entry([url_of(server, "/data_raw.zip")], None))
    root = tmp_path / "root"
    with pytest.raises(DataError, match="truncated transfer") as info:
        fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert "kept" not in str(info.value)
    assert leftovers(root) == []


def test_a_continued_download_needs_room_for_the_rest_only(server, tmp_path, monkeypatch):
    body = big_zip()
    server.routes["/data_raw.zip"] = ("ranged", body)
    server.cuts["/data_raw.zip"] = 150_000
    url = url_of(server, "/data_raw.zip")
    manifest = write_manifest(tmp_path / "m.yaml", caffe=archive_entry([url], sha(body), size_bytes=len(body)))
    root = tmp_path / "root"
    with pytest.raises(DataError, match="kept 150000"):
        fetch("caffe", dest=root, manifest=manifest, progress=False)
    real = shutil.disk_usage
    free = 2 * len(body) - 100_000  # less than archive + unpacked copy, more than what is still to come
    monkeypatch.setattr(download.shutil, "disk_usage", lambda p: real(p)._replace(free=free))
    fetch("caffe", dest=root, manifest=manifest, progress=False)
    assert server.ranges == [None, "bytes=150000-"]
    (root / "caffe" / "data_raw" / ".complete").unlink()  # not present any more: a new download, from byte 0
    with pytest.raises(DataError, match="not enough disk space"):
        fetch("caffe", dest=root, manifest=manifest, progress=False, force=True)



def test_a_compressed_body_is_refused_not_installed(server, tmp_path):
    server.routes["/f.bin"] = ("gzip", b"\x1f\x8b compressed bytes")
    manifest = write_manifest(tmp_path / "m.yaml", f=file_entry(url_of(server, "/f.bin"), "f.bin"))
    with pytest.raises(DataError, match="gzip-encoded"):
        fetch("f", dest=tmp_path / "root", manifest=manifest, progress=False)
    assert leftovers(tmp_path / "root") == [] and not (tmp_path / "root" / "f.bin").exists()
