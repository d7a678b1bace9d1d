"""What every chapter of the book does first, and where the chapters put their artefacts.

:class:`WorkLayout` names every file the chapters share, once: a chapter that writes ``finetune/runs.csv`` and the
chapter that reads it both ask the layout for :attr:`WorkLayout.finetune_runs_csv`. :func:`setup_chapter` pins the
number of threads (a fine-tuning run is bit-identical across repeats with the same number of torch threads, but not
between one and two threads), quietens the libraries' advice, loads the preset and makes the synthetic data when a
chapter is run by hand. :func:`build_info` records what a build ran on (threads, library versions) so that two
builds can be compared; ``tools/book.py`` writes it to ``work_dir/build_info.json``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import platform
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Torch threads of a chapter's own process (pretraining, prediction): a fixed number, not the machine's core count,
#: so that every machine computes the same numbers (two: the build machine has two cores).
BOOK_THREADS = 2
#: Torch threads of each run the protocol starts in parallel (``ssl4sar.experiments.parallel_map``): one per process,
#: two processes on two cores.
RUN_THREADS = 1
#: Environment variables that set the thread pools of OpenMP, MKL and OpenBLAS.
THREAD_ENVIRONMENT = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: Distributions whose versions a build records.
RECORDED_PACKAGES = ("torch", "lightning", "numpy", "scipy", "pandas", "scikit-image", "shapely", "rasterio",
                     "matplotlib", "papermill", "jupyter-book")
#: Loggers whose warnings a chapter does not show (advice on workers and logging intervals; the split rule).
QUIET_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "ssl4sar.data.caffe")


@dataclass(frozen=True)
class WorkLayout:
    """The work folder of a build: every artefact shared between chapters, named once (paths under ``root``)."""

    root: Path

    @property
    def build_info(self) -> Path:
        return self.root / "build_info.json"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def caffe(self) -> Path:
        """Synthetic CaFFe-layout data (when the build is not given real data)."""
        return self.data / "caffe"

    @property
    def timeseries_data(self) -> Path:
        return self.data / "timeseries"

    @property
    def ssl4sar_data(self) -> Path:
        """Synthetic SSL4SAR-layout data (unlabeled SAR with co-registered optical images)."""
        return self.data / "ssl4sar"

    def pretrain_run(self, method: str) -> Path:
        """Run folder of a pretraining chapter (checkpoints, logs, ``metrics.csv``, ``model.pt``)."""
        return self.root / "pretrain" / method

    def pretrained(self, method: str) -> Path:
        """The network a pretraining chapter exports (``optsimmim``: chapter 2, ``opttranslator``: chapter 3)."""
        return self.pretrain_run(method) / "model.pt"

    @property
    def finetune(self) -> Path:
        return self.root / "finetune"

    def finetune_run(self, init: str, seed: int) -> Path:
        """Run folder of one fine-tuning run (checkpoints, ``best_mde.pt``, ``metrics.csv``, ``test/``)."""
        return self.finetune / init / f"seed{seed}"

    @property
    def finetune_runs_csv(self) -> Path:
        """One row per fine-tuning run: init, seed, validation and test MDE, fronts found (chapter 4)."""
        return self.finetune / "runs.csv"

    @property
    def finetune_tests_csv(self) -> Path:
        """The paper's significance tests between initialisations (chapter 4)."""
        return self.finetune / "significance.csv"

    @property
    def evaluate(self) -> Path:
        return self.root / "evaluate"

    def evaluation(self, name: str) -> Path:
        return self.evaluate / name

    @property
    def evaluate_summary_csv(self) -> Path:
        """One row per model or ensemble: test MDE, fronts found, bootstrap CI over scenes (chapter 5)."""
        return self.evaluate / "summary.csv"

    @property
    def human_vs_model(self) -> Path:
        return self.root / "human_vs_model"

    @property
    def timeseries(self) -> Path:
        return self.root / "timeseries"

    def relative(self, path: str | Path) -> str:
        """``path`` relative to the work folder (``work_dir/…``) for display; other paths unchanged."""
        p = Path(path)
        try:
            return str(Path("work_dir") / p.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(p)


def pin_threads(threads: int = BOOK_THREADS) -> dict[str, Any]:
    """Set the thread pools of this process to ``threads`` (environment and torch); return the settings."""
    import torch

    for key in THREAD_ENVIRONMENT:
        os.environ[key] = str(threads)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # only settable before the first parallel work; intra-op threads are what matter
        pass
    return thread_settings()


@contextlib.contextmanager
def pinned_threads(threads: int) -> Iterator[dict[str, Any]]:
    """:func:`pin_threads` for a ``with`` block: the earlier environment and torch intra-op thread count come back
    after it (torch's inter-op pool cannot be changed once used)."""
    import torch

    environment = {key: os.environ.get(key) for key in THREAD_ENVIRONMENT}
    intra_op = torch.get_num_threads()
    try:
        yield pin_threads(threads)
    finally:
        for key, value in environment.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        torch.set_num_threads(intra_op)


def thread_settings() -> dict[str, Any]:
    """The thread settings in effect: environment variables and torch's pools."""
    import torch

    return {**{k: os.environ.get(k) for k in THREAD_ENVIRONMENT}, "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads()}


def package_versions(packages: Sequence[str] = RECORDED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` when it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build_info(preset: str, seed: int) -> dict[str, Any]:
    """What a build runs on: preset, seed, threads, processes, CPU, Python and library versions."""
    import torch

    return {"preset": preset, "seed": seed, "threads": thread_settings(), "run_threads": RUN_THREADS,
            "cpu_count": os.cpu_count(), "machine": platform.machine(), "processor": platform.processor(),
            "python": platform.python_version(), "torch_config": {"mkldnn": torch.backends.mkldnn.is_available(),
                                                                 "openmp": torch.backends.openmp.is_available()},
            "packages": package_versions()}


@dataclass
class ChapterSetup:
    """What :func:`setup_chapter` gives a chapter."""

    cfg: dict[str, Any]
    layout: WorkLayout
    caffe_root: Path
    synthetic: bool

    @property
    def preset_name(self) -> str:
        return str(self.cfg.get("name", "custom"))


def setup_chapter(preset: str, work_dir: str | Path, data_dir: str | Path | None = None, seed: int = 0,
                  layouts: Sequence[str] = ("caffe",), threads: int = BOOK_THREADS) -> ChapterSetup:
    """Pin threads, quieten library advice, load ``preset``; make synthetic data a by-hand run lacks.

    Args:
        preset: preset name or YAML path (:func:`ssl4sar.config.load_preset`).
        work_dir: the build's work folder (:class:`WorkLayout`).
        data_dir: CaFFe root, or ``None`` for the synthetic data in ``work_dir/data/caffe``.
        seed: seed of the synthetic data.
        layouts: synthetic layouts this chapter needs (generated only when missing; the build makes them first).
        threads: torch / OpenMP threads of the chapter's process.
    """
    from ssl4sar.config import load_preset

    pin_threads(threads)
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a kernel without ipywidgets
    warnings.filterwarnings("ignore", module=r"lightning(\.|$)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    cfg = load_preset(preset)
    layout = WorkLayout(Path(work_dir))
    layout.root.mkdir(parents=True, exist_ok=True)
    if data_dir is None:
        wanted = {"caffe": layout.caffe, "ssl4sar": layout.ssl4sar_data, "timeseries": layout.timeseries_data}
        missing = [name for name in layouts if name in wanted and not wanted[name].is_dir()]
        if missing:  # run by hand, not through tools/book.py
            from ssl4sar.data import synthetic

            synthetic.generate(layout.data, preset=preset, seed=seed, layouts=tuple(missing))
    caffe_root = Path(data_dir) if data_dir is not None else layout.caffe
    return ChapterSetup(cfg=cfg, layout=layout, caffe_root=caffe_root, synthetic=data_dir is None)


def build_info_table(layout: WorkLayout) -> Any:
    """``build_info.json`` as a two-column table (setting, value); a note row when the build wrote none."""
    import json

    import pandas as pd

    if not layout.build_info.is_file():
        return pd.DataFrame({"value": ["not recorded (chapter run by hand, not by tools/book.py)"]},
                            index=pd.Index(["build_info.json"], name="setting"))
    info = json.loads(layout.build_info.read_text())
    flat = pd.json_normalize(info, sep=" ").iloc[0]
    return flat.rename("value").rename_axis("setting").to_frame()
