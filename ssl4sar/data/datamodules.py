"""Lightning DataModules for fine-tuning (CaFFe layout) and pretraining (SSL4SAR layout).

Both take a data root and a preset dict (:func:`ssl4sar.config.load_preset`) and unpack the sizes,
probabilities and loader settings from it: ``data`` and ``finetune.batch_size_per_device`` for
:class:`CaffeDataModule`; ``pretrain`` for :class:`PretrainDataModule`. Train loaders use
:class:`~ssl4sar.data.datasets.EpochSampler` (fresh, reproducible samples every epoch; sharded across DDP
ranks), ``drop_last=True``, persistent workers when ``num_workers > 0`` and pinned memory when CUDA is
available. Validation loaders iterate the fixed window grids in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from ssl4sar.config import Preset, as_preset, load_preset
from ssl4sar.data.augment import AugmentParams
from ssl4sar.data.caffe import CaffeScene, discover
from ssl4sar.data.datasets import (
    CaffeTrainDataset,
    CaffeValDataset,
    EpochSampler,
    OpticalImages,
    UnlabeledTrainDataset,
    UnlabeledValDataset,
)
from ssl4sar.data.unlabeled import UnlabeledPair, discover_unlabeled

T = TypeVar("T")

__all__ = ["CaffeDataModule", "PretrainDataModule"]

log = logging.getLogger(__name__)


def _loader_kwargs(num_workers: int) -> dict[str, Any]:
    return {
        "num_workers": num_workers,
        "pin_memory": torch.cuda.is_available(),
        "persistent_workers": num_workers > 0,
    }


class _SampledDataModule(pl.LightningDataModule):
    """What both data modules share: construction from a preset name, an :class:`EpochSampler` train loader
    and an in-order validation loader. Subclasses set the loader settings and build the datasets in ``setup``."""

    batch_size: int
    val_batch_size: int
    num_workers: int
    train_dataset: Any
    val_dataset: Any

    @classmethod
    def from_preset(cls, root: str | Path, preset_name: str = "paper",
                    overrides: Mapping[str, Any] | None = None, **kwargs: Any) -> Self:
        """Build from a preset name (``paper``, ``demo``, ``smoke`` or a YAML path) with optional overrides."""
        return cls(root, load_preset(preset_name, overrides), **kwargs)

    def train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            self.setup("fit")
        assert self.train_dataset is not None
        return DataLoader(self.train_dataset, batch_size=self.batch_size, sampler=EpochSampler(self.train_dataset),
                          drop_last=True, **_loader_kwargs(self.num_workers))

    def val_dataloader(self) -> DataLoader:
        if self.val_dataset is None:
            self.setup("validate")
        assert self.val_dataset is not None
        return DataLoader(self.val_dataset, batch_size=self.val_batch_size, shuffle=False, drop_last=False,
                          **_loader_kwargs(self.num_workers))


class CaffeDataModule(_SampledDataModule):
    """Fine-tuning data: random context crops of the ``train`` split, validation windows of the ``val`` split.

    Args:
        root: CaFFe-layout data root (``sar_images/``, ``zones/``, ``fronts/``, ``bounding_boxes/``).
        cfg: a complete preset (dict or :class:`ssl4sar.config.Preset`); uses ``data``, ``finetune`` and ``seed``.
        seed: base seed of the random training samples (default: the preset's ``seed``).
        batch_size: per-device training batch size (default ``finetune.batch_size_per_device``).
        val_batch_size: validation batch size (default: the training batch size).
        num_workers: DataLoader workers (default ``data.num_workers``).
        strict_split: require the 559 CaFFe training images (official train/val split).
        preload: load all training scenes in :meth:`setup` (main process; workers then share them).
    """

    def __init__(self, root: str | Path, cfg: Mapping[str, Any] | Preset, seed: int | None = None, *,
                 batch_size: int | None = None, val_batch_size: int | None = None, num_workers: int | None = None,
                 strict_split: bool = False, preload: bool = True) -> None:
        super().__init__()
        cfg = as_preset(cfg).to_dict()  # validated and complete
        data = cfg["data"]
        self.root = Path(root)
        self.cfg = cfg
        self.seed = int(seed if seed is not None else cfg["seed"])
        self.context_size = int(data["context_size"])
        self.target_size = int(data["target_size"])
        self.samples_per_epoch = int(data["samples_per_epoch"])
        self.augment = AugmentParams.from_config(data)
        ft = cfg["finetune"]
        self.batch_size = int(batch_size if batch_size is not None else ft["batch_size_per_device"])
        self.val_batch_size = int(val_batch_size if val_batch_size is not None else self.batch_size)
        self.num_workers = int(num_workers if num_workers is not None else data["num_workers"])
        self.strict_split = strict_split
        self.preload = preload
        self.train_scenes: list[CaffeScene] = []
        self.val_scenes: list[CaffeScene] = []
        self.train_dataset: CaffeTrainDataset | None = None
        self.val_dataset: CaffeValDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if stage not in (None, "fit", "validate"):
            return
        if self.train_dataset is None and stage in (None, "fit"):
            self.train_scenes = discover(self.root, "train", strict_split=self.strict_split)
            self.train_dataset = CaffeTrainDataset(self.train_scenes, self.context_size, self.target_size,
                                                   self.samples_per_epoch, self.augment, seed=self.seed)
            if self.preload:
                self.train_dataset.preload()
        if self.val_dataset is None:
            self.val_scenes = discover(self.root, "val", strict_split=self.strict_split)
            self.val_dataset = CaffeValDataset(self.val_scenes, self.target_size)


class PretrainDataModule(_SampledDataModule):
    """Pretraining data: random SAR/optical crops of ``sar/train``, validation windows of ``sar/val``.

    Args:
        root: SSL4SAR-layout data root (``sar/train``, ``sar/val``, ``optical/``).
        cfg: a complete preset (dict or :class:`ssl4sar.config.Preset`); uses ``pretrain`` and ``seed``.
        seed: base seed (default: the preset's ``seed``).
        batch_size, val_batch_size, num_workers: loader settings (defaults from ``pretrain``).
        glacier_aliases: SAR glacier key → optical key, where they differ.
        preload: read every optical image (one per glacier) in :meth:`setup` (main process; the training and
            validation datasets and the workers then share them). ``False``: each worker reads them on demand and
            keeps the 4 most recently used.
    """

    def __init__(self, root: str | Path, cfg: Mapping[str, Any] | Preset, seed: int | None = None, *,
                 batch_size: int | None = None, val_batch_size: int | None = None, num_workers: int | None = None,
                 glacier_aliases: Mapping[str, str] | None = None, preload: bool = True) -> None:
        super().__init__()
        cfg = as_preset(cfg).to_dict()  # validated and complete
        pre = cfg["pretrain"]
        self.root = Path(root)
        self.cfg = cfg
        self.seed = int(seed if seed is not None else cfg["seed"])
        self.context_size = int(pre["context_size"])
        self.samples_per_epoch = int(pre["samples_per_epoch"])
        self.min_scale = float(pre["min_scale"])
        self.prob_flip = float(pre["prob_flip"])
        self.batch_size = int(batch_size if batch_size is not None else pre["batch_size_per_device"])
        self.val_batch_size = int(val_batch_size if val_batch_size is not None else self.batch_size)
        self.num_workers = int(num_workers if num_workers is not None else pre["num_workers"])
        self.glacier_aliases = dict(glacier_aliases or {})
        self.val_max_pairs = pre.get("val_max_pairs")
        self.train_pairs: list[UnlabeledPair] = []
        self.val_pairs: list[UnlabeledPair] = []
        self.train_dataset: UnlabeledTrainDataset | None = None
        self.val_dataset: UnlabeledValDataset | None = None
        self.preload = preload
        self.optical_images = OpticalImages(max_items=None if preload else 4)

    def setup(self, stage: str | None = None) -> None:
        if stage not in (None, "fit", "validate"):
            return
        if self.train_dataset is None and stage in (None, "fit"):
            self.train_pairs = discover_unlabeled(self.root, "train", glacier_aliases=self.glacier_aliases)
            self.train_dataset = UnlabeledTrainDataset(self.train_pairs, self.context_size, self.samples_per_epoch,
                                                       min_scale=self.min_scale, prob_flip=self.prob_flip,
                                                       seed=self.seed, optical_images=self.optical_images)
        if self.val_dataset is None:
            self.val_pairs = evenly_spaced(discover_unlabeled(self.root, "val", glacier_aliases=self.glacier_aliases),
                                           self.val_max_pairs)
            self.val_dataset = UnlabeledValDataset(self.val_pairs, self.context_size,
                                                   optical_images=self.optical_images)
        if self.preload:
            t0 = time.perf_counter()
            pairs = self.train_pairs + self.val_pairs
            if self.optical_images.preload((p.optical_path for p in pairs), progress=False):
                log.info("read the %d optical image(s) of %d SAR/optical pairs into memory (%.0f MB) in %.1f s",
                         len(self.optical_images), len(pairs), self.optical_images.nbytes / 1e6,
                         time.perf_counter() - t0)


def evenly_spaced(items: Sequence[T], limit: int | None) -> list[T]:
    """At most ``limit`` of ``items``, evenly spaced over the sequence (all when ``limit`` is ``None``).

    Pretraining validates on every window of every ``sar/val`` pair; with a large unlabeled pool that costs more
    than the training steps. A fixed number of pairs spread over the (glacier-, then date-sorted) pool keeps the
    validation cost set by the preset, not by the size of the pool.
    """
    items = list(items)
    if limit is None or len(items) <= int(limit):
        return items
    if int(limit) < 1:
        raise ValueError(f"pretrain.val_max_pairs must be at least 1, got {limit}")
    n = int(limit)
    return [items[(i * len(items)) // n] for i in range(n)]
