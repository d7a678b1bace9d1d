"""Exceptions raised for bad input. Messages name the file and the problem, and suggest a fix."""

from __future__ import annotations

from pathlib import Path


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


class ChecksumError(DataError):
    """A downloaded or local file does not have the expected sha256."""


class TrainingDiverged(RuntimeError):
    """Training stopped because the loss or the weights became NaN or infinite (no checkpoint of that state)."""
