"""The ``ssl4sar data`` command (list / fetch / synth) through ssl4sar.cli.main and once through a subprocess."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from ssl4sar.cli import main

ZIP_MEMBERS = {
    "data_raw/sar_images/train/DBE_2008-03-30_TSX_7_3_049.png": b"train",
    "data_raw/sar_images/test/COL_2011-06-18_TDX_7_1_024.png": b"test",
    "data_raw/zones/train/DBE_2008-03-30_TSX_7_3_049_zones.png": b"zones",
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        body = self.server.files.get(self.path)  # type: ignore[attr-defined]
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture()
def env(tmp_path, monkeypatch) -> Iterator[dict[str, Any]]:
    """A local HTTP server, a temporary manifest pointing at it and a temporary data root (both via env)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in ZIP_MEMBERS.items():
            zf.writestr(name, data)
    body = buf.getvalue()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files = {"/demo.zip": body}  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    common = {"license": "CC-BY-4.0", "citation": "Test (2024)", "note": "test"}
    manifest = {"version": 1, "resources": {
        "demo-zip": {"kind": "archive", "urls": [f"{base}/demo.zip"], "filename": "demo.zip",
                     "sha256": hashlib.sha256(body).hexdigest(), "size_bytes": len(body), "path": "demo/data_raw",
                     "unpack": {"layout": ["sar_images/train", "sar_images/test", "zones/train"]}, **common},
        "gone": {"kind": "file", "urls": [f"{base}/gone.pth"], "sha256": None, "approx_size_bytes": 115_000_000,
                 "path": "weights/gone.pth", **common},
        "synth-smoke": {"kind": "generated", "generator": "ssl4sar.data.synthetic.generate", "preset": "smoke",
                        "seed": 3, "layouts": ["caffe"], "path": "synthetic/smoke"},
    }}
    manifest_path = tmp_path / "manifest.yaml"
    manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    root = tmp_path / "data"
    monkeypatch.setenv("SSL4SAR_MANIFEST", str(manifest_path))
    monkeypatch.setenv("SSL4SAR_DATA", str(root))
    yield {"root": root, "manifest": manifest_path, "base": base}
    srv.shutdown()
    srv.server_close()


def _table(text: str) -> dict[str, list[str]]:
    """The rows of the `data list` table (it ends at the first blank line) by name."""
    lines = text.split("\n\n")[0].splitlines()
    assert lines[0].split() == ["NAME", "KIND", "PRESENT", "SIZE", "PATH"]
    return {row[0]: row[1:] for row in (line.split() for line in lines[1:])}


def test_top_level_help_lists_data(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "data" in out and "list, fetch" in out


def test_data_without_subcommand_prints_help(capsys, env):
    assert main(["data"]) == 0
    out = capsys.readouterr().out
    assert "list" in out and "fetch" in out and "synth" in out


def test_list_then_fetch_then_list_shows_present(capsys, env):
    assert main(["data", "list"]) == 0
    table = _table(capsys.readouterr().out)
    assert table["demo-zip"][:2] == ["archive", "no"]
    assert table["demo-zip"][-1] == str(env["root"] / "demo" / "data_raw")
    assert table["gone"][:3] == ["file", "no", "~115"]
    assert table["synth-smoke"][:3] == ["generated", "no", "-"]

    assert main(["data", "fetch", "demo-zip", "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == f"demo-zip: {env['root'] / 'demo' / 'data_raw'}"
    installed = env["root"] / "demo" / "data_raw"
    assert (installed / "sar_images/test/COL_2011-06-18_TDX_7_1_024.png").read_bytes() == b"test"

    assert main(["data", "list"]) == 0
    assert _table(capsys.readouterr().out)["demo-zip"][:2] == ["archive", "yes"]


def test_fetch_dest_overrides_the_data_root(capsys, env, tmp_path):
    other = tmp_path / "elsewhere"
    assert main(["data", "fetch", "demo-zip", "--dest", str(other), "--no-progress"]) == 0
    assert (other / "demo" / "data_raw" / ".complete").is_file()
    assert not env["root"].exists()
    capsys.readouterr()
    assert main(["data", "list", "--dest", str(other)]) == 0
    assert _table(capsys.readouterr().out)["demo-zip"][1] == "yes"


def test_fetch_error_is_one_line_and_exit_status_1(capsys, caplog, env):
    assert main(["data", "fetch", "gone", "--no-progress"]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "HTTP 404" in errors[0] and f"{env['base']}/gone.pth" in errors[0]
    assert main(["data", "fetch", "no-such-entry"]) == 1
    assert "no resource named 'no-such-entry'" in caplog.records[-1].getMessage()


def test_synth_calls_the_generator_and_marks_the_output(capsys, tmp_path):
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--preset", "smoke", "--seed", "5", "--layouts", "caffe"]) == 0
    assert str(out) in capsys.readouterr().out
    marker = json.loads((out / ".complete").read_text())
    assert (marker["generator"], marker["preset"], marker["seed"], marker["layouts"]) == (
        "ssl4sar.data.synthetic.generate", "smoke", 5, ["caffe"])
    assert any((out / "caffe").rglob("*.png")) or any((out / "caffe").rglob("*.tif"))
    assert not (out / "ssl4sar").exists()


@pytest.mark.parametrize(("options", "message"), [
    ([], "output folder is not empty"),  # a second run without --force
    (["--seed", "-1"], "seed: expected an integer in [0, 4294967295], got -1"),
    (["--preset", "nope.yaml"], "unknown preset 'nope.yaml'"),
])
def test_a_refused_synth_run_leaves_a_complete_output_marked_complete(options, message, tmp_path, caplog):
    # the run removed the output's completion marker first, then refused: the complete data then read as unverified
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--preset", "smoke", "--layouts", "caffe", "--no-progress"]) == 0
    before = (out / ".complete").read_text()
    argv = ["data", "synth", "--out", str(out), "--preset", "smoke", "--layouts", "caffe", "--no-progress", *options]
    assert main(argv) == 1
    assert message in caplog.text
    assert (out / ".complete").read_text() == before


def test_synth_takes_a_yaml_preset_like_the_other_commands(tmp_path):
    preset = tmp_path / "small.yaml"
    preset.write_text("base: smoke\nsynthetic:\n  n_train: 2\n  n_test: 1\n")
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--preset", str(preset), "--layouts", "caffe",
                 "--no-progress"]) == 0
    assert len(list((out / "caffe" / "sar_images" / "train").glob("*"))) == 2
    assert len(list((out / "caffe" / "sar_images" / "test").glob("*"))) == 1


def test_synth_rejects_unknown_layout(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["data", "synth", "--out", str(tmp_path / "x"), "--layouts", "mars"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_data_list_in_a_subprocess(env):
    environ = {**os.environ, "SSL4SAR_MANIFEST": str(env["manifest"]), "SSL4SAR_DATA": str(env["root"]),
               "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "ssl4sar.cli", "data", "list"], capture_output=True, text=True,
                            env=environ, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    table = _table(result.stdout)
    assert set(table) == {"demo-zip", "gone", "synth-smoke"}
    assert f"manifest: {env['manifest']}" in result.stdout
