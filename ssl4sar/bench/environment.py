"""What machine a benchmark ran on (:func:`environment`) and how fast it multiplies matrices
(:func:`measure_matmul_peak`, the reference of every "% of peak")."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssl4sar.bench.measure import time_steps
from ssl4sar.models.fast import cpu_has_native_bf16

__all__ = ["environment", "git_commit_of", "measure_matmul_peak", "measure_memory_bandwidth"]

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit_of(package_dir: Path) -> str | None:
    """Short commit of the git checkout that holds ``package_dir`` (the ``ssl4sar`` package folder) as its top-level
    package, with ``-dirty`` when tracked files differ from it; ``None`` for an installed copy (no ``.git`` beside
    the package: a wheel in some other repository's virtual environment must not report that repository's commit)
    or when git is unavailable."""
    root = Path(package_dir).parent
    if not (root / ".git").exists():
        return None

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                                 check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return head + ("-dirty" if status else "")


def _git_commit() -> str | None:
    return git_commit_of(Path(__file__).resolve().parent.parent)


def environment(device: str | torch.device) -> dict[str, Any]:
    """Versions and hardware of this run: Python, torch, timm, numpy, CUDA / cuDNN, device name and memory, CPU model,
    CPU count (total and usable), torch intra-/inter-op threads, CPU SIMD capability, git commit."""
    import timm

    from ssl4sar import __version__

    dev = torch.device(device)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 1
    env: dict[str, Any] = {
        "ssl4sar": __version__,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
        "device": str(dev),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_native_bf16": cpu_has_native_bf16(),
    }
    with contextlib.suppress(OSError):
        env["load_average"] = list(os.getloadavg())
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        env.update(
            {
                "device_name": props.name,
                "device_memory_gb": props.total_memory / 1024**3,
                "device_capability": f"{props.major}.{props.minor}",
                "device_sm_count": props.multi_processor_count,
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(),
                "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            }
        )
    else:
        env["device_name"] = f"CPU ({env['cpu_model']}, {usable} usable cores)"
    return env




def measure_matmul_peak(
    device: str | torch.device,
    dtype: torch.dtype = torch.bfloat16,
    n: int = 8192,
    iters: int = 20,
    warmup: int = 3,
) -> dict[str, Any]:
    """Dense ``n × n`` by ``n × n`` matmul throughput (2 n³ FLOPs each) — the achievable compute peak.

    On CUDA the ``iters`` matmuls are timed together with CUDA events after ``warmup`` untimed ones; on CPU with
    ``time.perf_counter`` (best of ``iters`` single matmuls). Returns ``tflops`` (TFLOP/s), ``n``, ``dtype``,
    ``seconds_per_matmul``.
    """
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(n, n, device=dev, dtype=torch.float32, generator=gen).to(dtype)
    b = torch.randn(n, n, device=dev, dtype=torch.float32, generator=gen).to(dtype)
    flops = 2.0 * n**3
    for _ in range(max(0, warmup)):
        torch.mm(a, b)
    if dev.type == "cuda":
        def matmuls() -> None:
            for _ in range(iters):
                torch.mm(a, b)

        # time_steps records its CUDA events on the stream of ``dev`` (not on the current device's)
        per = time_steps(matmuls, 1, dev)[0] / iters
    else:
        times = []
        for _ in range(max(1, iters)):
            t0 = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - t0)
        per = min(times)
    return {
        "tflops": flops / per / 1e12,
        "device": str(dev),
        "n": n,
        "dtype": str(dtype).replace("torch.", ""),
        "seconds_per_matmul": per,
        "iters": iters,
    }


def measure_memory_bandwidth(device: str | torch.device, mib: int = 1024, iters: int = 10) -> dict[str, Any]:
    """Device memory bandwidth from copying a ``mib`` MiB buffer into another (each byte read once and written
    once: 2 × ``mib`` MiB of traffic per copy) — the "bytes per second" side of a roofline, as
    :func:`measure_matmul_peak` is its FLOP side. Best of ``iters`` copies (CUDA events on CUDA). Returns ``gb_per_s``
    (10⁹ bytes/s), ``mib``, ``seconds_per_copy``."""
    dev = torch.device(device)
    n = mib * 2**20 // 4
    src = torch.ones(n, device=dev, dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm-up: first touch of the pages
    per = min(time_steps(lambda: dst.copy_(src), iters, dev))
    return {"gb_per_s": 2 * n * 4 / per / 1e9, "device": str(dev), "mib": mib, "seconds_per_copy": per,
            "iters": iters}

