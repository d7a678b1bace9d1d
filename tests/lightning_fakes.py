"""Helpers for testing LightningModules' compiled paths without a Trainer or a C++ compiler.

``record_compiled_calls`` makes a module file build its ``CompiledCall`` with the ``aot_eager`` backend, which
traces like inductor but skips its minutes of code generation on the CPU, and keeps the calls it built.
``setup_on_cpu`` runs a module's ``setup("fit")`` as a Trainer would on the CPU, then detaches the fake Trainer, so
that ``training_step``'s ``self.log`` is a no-op.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import pytest
import torch

from ssl4sar.models.fast import CompiledCall


def record_compiled_calls(monkeypatch: pytest.MonkeyPatch, module_file: types.ModuleType) -> list[CompiledCall]:
    """Make ``module_file.CompiledCall`` build ``aot_eager`` calls; return the list that collects them."""
    made: list[CompiledCall] = []

    def compiled_call(module: torch.nn.Module) -> CompiledCall:
        made.append(CompiledCall(module, backend="aot_eager"))
        return made[-1]

    monkeypatch.setattr(module_file, "CompiledCall", compiled_call)
    return made


def setup_on_cpu(*modules: Any) -> None:
    """``setup("fit")`` each LightningModule under a fake CPU Trainer, then leave it without one, in train mode."""
    cpu = types.SimpleNamespace(strategy=types.SimpleNamespace(root_device=torch.device("cpu")))
    for m in modules:
        m.trainer = cpu
        m.setup("fit")
        m.trainer = None
        m.train()


def counting(fn: Callable[..., Any], calls: list[int]) -> Callable[..., Any]:
    """``fn``, appending to ``calls`` on each call."""
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return fn(*args, **kwargs)
    return wrapped
