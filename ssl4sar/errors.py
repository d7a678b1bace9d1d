"""Exceptions raised for bad input. Messages name the file and the problem, and suggest a fix."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is needed: the command line's start-up does not load it
    import torch


class DataError(ValueError):
    """Input data is missing, corrupt or inconsistent.

    ``DataError(path, problem, hint)`` formats as ``"<path>: <problem> (<hint>)"``.
    """

    def __init__(self, path: str | Path | None, problem: str, hint: str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.problem = problem
        self.hint = hint
        msg = f"{path}: {problem}" if path is not None else problem
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)

    def __reduce__(self) -> tuple:
        # rebuilt from its parts, not from the message: a worker process sends its exception back pickled
        return type(self), (self.path, self.problem, self.hint)


class SettingError(ValueError):
    """A setting (a function's argument, a command-line option) is outside the values it can take; the message
    names it, the allowed values and the value given. Raised before any input is read."""


class ChecksumError(DataError):
    """A downloaded or local file does not have the expected sha256."""


class TrainingDiverged(RuntimeError):
    """Training stopped because the loss or the weights became NaN or infinite (no checkpoint of that state)."""


class DiskFull(DataError):
    """The disk of an output folder has no space for what a command is about to write (``path``: the folder). Every
    later item would fail alike, so a command stops at it; what it finished before is kept."""


class OutOfMemory(RuntimeError):
    """A training or inference step did not fit in the device's memory. The message names the device, the setting
    that decides the memory (the batch per device, the windows per forward pass) and a value to try instead."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure of torch: ``torch.OutOfMemoryError`` (CUDA), or the CPU allocator's
    ``RuntimeError`` ("DefaultCPUAllocator: can't allocate memory")."""
    import torch

    # torch.cuda.OutOfMemoryError: the same class as torch.OutOfMemoryError, which torch 2.4 (our oldest) lacks
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(exc)


def device_memory_text(device: str | torch.device) -> str:
    """``"Tesla T4 (GPU 0, 14.6 GiB)"`` for a CUDA device, ``"the CPU"`` otherwise (for messages)."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return "the CPU" if dev.type == "cpu" else str(dev)
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return f"{props.name} (GPU {index}, {props.total_memory / 1024**3:.1f} GiB)"
