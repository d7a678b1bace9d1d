"""Make torch report CUDA GPUs of a chosen kind on a machine without one, for the code that decides by the GPU's
kind (precision, benchmark plans). Nothing runs on the pretended device: only ``torch.cuda``'s queries answer."""

from __future__ import annotations

import types

import pytest
import torch


def pretend_cuda(monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], name: str, count: int = 1,
                 memory_gib: float = 15.0) -> None:
    """``count`` GPUs named ``name`` with compute ``capability`` and ``memory_gib`` of memory, answering as torch
    does on such a GPU.

    ``torch.cuda.is_bf16_supported()`` answers True below compute capability 8.0 too: by default it only checks
    that a bf16 tensor can be made there, which emulation allows (T4, V100).
    """
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    properties = types.SimpleNamespace(name=name, major=capability[0], minor=capability[1],
                                       total_memory=int(memory_gib * 1024**3), multi_processor_count=40)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: properties)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: capability[0] >= 8 or including_emulation)
    monkeypatch.setattr(torch.version, "hip", None)


def pretend_cuda_memory(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """A counted CUDA allocator with no-op timing, for measuring code on a pretended GPU (with :func:`pretend_cuda`).

    ``allocate(mb)`` adds (or, negative, frees) ``mb`` MB; ``torch.cuda.memory_allocated``,
    ``max_memory_allocated`` and ``reset_peak_memory_stats`` answer from the count, and CUDA events time every
    interval as 1 ms."""
    mb = 1024 * 1024
    mem = {"allocated": 0, "peak": 0}

    def allocate(n: float) -> None:
        mem["allocated"] += int(n * mb)
        mem["peak"] = max(mem["peak"], mem["allocated"])

    class Event:
        def record(self, stream: object = None) -> None:
            pass

        def elapsed_time(self, end: Event) -> float:
            return 1.0

    monkeypatch.setattr(torch.cuda, "Event", lambda enable_timing=False: Event())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: mem["allocated"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: mem["peak"])
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: mem.update(peak=mem["allocated"]))
    return types.SimpleNamespace(allocate=allocate)
