"""A 200 MB file over a connection that drops every 50 MB: how many runs of `fetch` it takes, and how many bytes
cross the wire, when cut-off transfers continue (a server with ETag and ranges) and when they restart (a server
without a validator, which is also what every download did before `ssl4sar.data.transfer`). Then the transfer's
throughput against pooch's HTTP downloader (which the library used before) on an uncut local connection, 3
alternating rounds. Everything runs on 127.0.0.1.

Usage: python flaky_fetch.py [SIZE_MB] [CUT_MB]  (defaults 200 and 50)
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pooch
import yaml

from ssl4sar.data import transfer
from ssl4sar.data.download import fetch
from ssl4sar.errors import DataError

SIZE = int(float(sys.argv[1]) * 1e6) if len(sys.argv) > 1 else 200_000_000
CUT = int(float(sys.argv[2]) * 1e6) if len(sys.argv) > 2 else 50_000_000
BODY = os.urandom(SIZE)
SHA = hashlib.sha256(BODY).hexdigest()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        srv = self.server
        start = 0
        asked = self.headers.get("Range")
        if srv.validator and asked and self.headers.get("If-Range") == '"v1"':
            start = int(asked.removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{SIZE - 1}/{SIZE}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(SIZE - start))
        if srv.validator:
            self.send_header("ETag", '"v1"')
        self.end_headers()
        end = SIZE if not srv.cut else min(SIZE, start + CUT)
        view = memoryview(BODY)
        for i in range(start, end, 1 << 20):
            self.wfile.write(view[i:min(end, i + (1 << 20))])
        srv.sent += end - start
        self.close_connection = True

    def log_message(self, *args):
        pass


def serve(validator: bool, cut: bool) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.validator, srv.cut, srv.sent = validator, cut, 0
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def runs_until_installed(validator: bool, work: Path, max_runs: int = 8) -> str:
    srv = serve(validator, cut=True)
    url = f"http://127.0.0.1:{srv.server_address[1]}/big.bin"
    manifest = work / f"m{validator}.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "resources": {"big": {
        "kind": "file", "urls": [url], "sha256": SHA, "size_bytes": SIZE, "path": "big.bin", "license": "test",
        "citation": "test", "note": "test"}}}))
    root = work / f"root{validator}"
    t0 = time.perf_counter()
    for run in range(1, max_runs + 1):
        try:
            path = fetch("big", dest=root, manifest=manifest, progress=False)
        except DataError:
            continue
        ok = hashlib.sha256(path.read_bytes()).hexdigest() == SHA
        return (f"installed after {run} run(s), {srv.sent / 1e6:.0f} MB sent in all, {time.perf_counter() - t0:.1f} s;"
                f" sha256 matches: {ok}")
    return f"not installed after {max_runs} runs, {srv.sent / 1e6:.0f} MB sent in all"


def throughput(work: Path, rounds: int = 3) -> None:
    srv = serve(validator=True, cut=False)
    url = f"http://127.0.0.1:{srv.server_address[1]}/big.bin"
    times: dict[str, list[float]] = {"ssl4sar transfer": [], "pooch HTTPDownloader": []}
    for _ in range(rounds):
        for name in times:
            out = work / f"t-{name[:5]}.bin"
            out.unlink(missing_ok=True)
            t0 = time.perf_counter()
            if name.startswith("ssl4sar"):
                transfer.transfer(url, out, work / "t.json", progress=False)
            else:
                pooch.HTTPDownloader(progressbar=False)(url, str(out), None)
            times[name].append(time.perf_counter() - t0)
            assert out.stat().st_size == SIZE
    for name, ts in times.items():
        print(f"{name}: " + ", ".join(f"{t:.2f}" for t in ts) + f" s; best {SIZE / min(ts) / 1e6:.0f} MB/s")
    ratios = [p / s for s, p in zip(times["ssl4sar transfer"], times["pooch HTTPDownloader"])]
    print("pooch time / transfer time per round: " + ", ".join(f"{r:.2f}" for r in ratios))


if __name__ == "__main__":
    print(f"{SIZE / 1e6:.0f} MB file, the connection drops after {CUT / 1e6:.0f} MB of every response")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("server with ETag and ranges:", runs_until_installed(True, work))
        print("server without a validator: ", runs_until_installed(False, work))
        throughput(work)
