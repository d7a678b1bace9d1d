"""torch Datasets for fine-tuning on CaFFe and for pretraining on SSL4SAR (batch contracts in ARCHITECTURE.md).

Fine-tuning sample (dict): ``image_context`` float32 ``(1, C, C)`` in [0, 1] (SAR/255, no mean/std, §3.1),
``mask_context`` int64 ``(C, C)`` class ids, ``image`` float32 ``(1, T, T)`` and ``mask`` int64 ``(T, T)`` (the
centre crop, T = C/2), ``stem`` str. Validation samples add ``window`` (int), ``origin`` (int64 ``(2,)``,
window top-left in padded coordinates), ``centre_origin`` (int64 ``(2,)``, centre-crop top-left in original
image coordinates, may be negative) and ``image_shape`` (int64 ``(2,)``, original ``(H, W)``), which is all that
stitching needs.

Pretraining sample: ``sar`` float32 ``(1, C, C)``, ``optical`` float32 ``(14, C, C)``, both in [0, 1], ``name`` str.

Random training datasets have ``samples_per_epoch`` items per epoch. Sample ``i`` of epoch ``e`` is a pure
function of ``(seed, e, i)`` (its generator is ``numpy.random.default_rng(SeedSequence([seed, e, i]))``), so the
numbers do not depend on the number of DataLoader workers, on which process draws them, or on the order.
:class:`EpochSampler` feeds the key ``e·N + i``; Lightning calls its ``set_epoch`` every epoch (it is a
``DistributedSampler``, so Lightning keeps it under DDP, and it shards the keys across ranks itself).
Scenes, and the pretraining pool's optical images (:class:`OpticalImages`, one per glacier), are loaded lazily in
each worker and cached (``preload()`` loads them in the main process, before the workers fork, so that they share
the memory; the data modules do).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler
from tqdm.auto import tqdm

from ssl4sar.config import paper_preset
from ssl4sar.data.augment import AugmentParams, augment_context
from ssl4sar.data.caffe import CaffeScene, read_sar, read_zones
from ssl4sar.data.raster import read_raster_info
from ssl4sar.data.sampling import (
    WindowGrid,
    centre_crop,
    random_context_crop,
    validation_windows,
    whole_image_padding,
)
from ssl4sar.data.unlabeled import (
    PretrainCrop,
    UnlabeledPair,
    check_pair_grid,
    draw_pretrain_crop,
    pretrain_validation_windows,
    read_optical,
    read_unlabeled_sar,
    sar_shape,
)
from ssl4sar.errors import DataError

__all__ = [
    "sample_rng", "EpochSampler", "CaffeTrainDataset", "CaffeValDataset", "UnlabeledTrainDataset",
    "UnlabeledValDataset", "OpticalImages", "finetune_sample",
]

log = logging.getLogger(__name__)
_PAPER = paper_preset().pretrain  # crop scale and flip defaults (§2.3)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of ``epoch`` (a pure function of the three integers)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index)]))


def _to_image_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 ``(..., H, W)`` → float32 in [0, 1] with a channel axis for 2-D input."""
    t = torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32).div_(255.0)
    return t[None] if t.ndim == 2 else t


def _to_mask_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr).astype(np.int64))


class _EpochKeyed(Dataset):
    """A dataset of ``samples_per_epoch`` random samples whose item ``key`` means sample ``key % N`` of epoch
    ``key // N``."""

    def __init__(self, samples_per_epoch: int, seed: int) -> None:
        if samples_per_epoch <= 0:
            raise ValueError(f"samples_per_epoch must be positive, got {samples_per_epoch}")
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, key: int) -> dict[str, Any]:
        key = int(key)
        if key < 0:
            raise IndexError(key)
        epoch, index = divmod(key, self.samples_per_epoch)
        return self.sample(epoch, index)

    def sample(self, epoch: int, index: int) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


class EpochSampler(DistributedSampler):
    """Sampler of epoch-keyed random datasets: yields ``epoch·N + i`` for a per-epoch permutation of ``i``.

    Under ``torch.distributed`` the keys are sharded across ranks (padded to equal length like
    ``DistributedSampler``); otherwise one replica. Call :meth:`set_epoch` (Lightning does) each epoch.
    """

    def __init__(self, dataset: _EpochKeyed, *, shuffle: bool = True, seed: int | None = None,
                 num_replicas: int | None = None, rank: int | None = None) -> None:
        if num_replicas is None or rank is None:
            if dist.is_available() and dist.is_initialized():
                num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
                rank = dist.get_rank() if rank is None else rank
            else:
                num_replicas, rank = 1, 0
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=dataset.seed if seed is None else int(seed), drop_last=False)

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)  # type: ignore[arg-type]
        if self.shuffle:
            order = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, 2**31 - 1])).permutation(n)
        else:
            order = np.arange(n)
        if self.total_size > n:
            order = np.concatenate([order, np.resize(order, self.total_size - n)])
        mine = order[self.rank:self.total_size:self.num_replicas]
        base = self.epoch * n
        return iter((base + int(i)) for i in mine)


class _SceneCache:
    """Loads ``(image, zones)`` of scenes on first use and keeps them (optionally bounded, LRU)."""

    def __init__(self, scenes: Sequence[CaffeScene], max_items: int | None = None) -> None:
        self.scenes = list(scenes)
        self.max_items = max_items
        self._items: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        item = self._items.get(idx)
        if item is not None:
            self._items.move_to_end(idx)
            return item
        scene = self.scenes[idx]
        image = read_sar(scene.sar_path)
        zones = read_zones(scene.zones_path)
        if image.shape != zones.shape:
            raise DataError(scene.zones_path, f"zone mask is {zones.shape[0]}x{zones.shape[1]} (HxW) but the SAR "
                            f"image {scene.sar_path.name} is {image.shape[0]}x{image.shape[1]}",
                            "image and masks of a scene must have the same size")
        self._items[idx] = (image, zones)
        if self.max_items is not None and len(self._items) > self.max_items:
            self._items.popitem(last=False)
        return image, zones

    def preload(self, progress: bool = True) -> None:
        for i in tqdm(range(len(self.scenes)), desc="loading scenes", disable=not progress, leave=False):
            self[i]


def finetune_sample(image: np.ndarray, mask: np.ndarray, context_size: int, target_size: int,
                    rng: np.random.Generator, params: AugmentParams,
                    mixup_source: Callable[[np.random.Generator], np.ndarray] | None = None,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Random context crop with re-zoom plus augmentations (§3.3 steps 1–4) from an unpadded scene.

    The scene is virtually padded with ``pad_whole_image(·, C)``. Returns the augmented ``(C, C)`` uint8 context
    and its ``(C, C)`` class-id mask; the centre ``T`` crop is taken by the caller.
    """
    pad = whole_image_padding(image.shape, context_size)
    ctx, msk = random_context_crop(image, mask, context_size, rng, prob_rezoom=params.prob_rezoom,
                                   zoom_range=params.zoom_range, padding=pad, antialias=params.antialias)
    assert msk is not None
    return augment_context(ctx, msk, rng, params, mixup_source)


class CaffeTrainDataset(_EpochKeyed):
    """Random fine-tuning samples (§3.3) from CaFFe scenes.

    Args:
        scenes: training scenes (:func:`ssl4sar.data.caffe.discover`).
        context_size: ``C`` in px (paper 512).
        target_size: ``T`` in px (paper 256, = C/2).
        samples_per_epoch: items per epoch (paper 40 000).
        augment: augmentation probabilities / ranges (reference defaults).
        seed: base seed.
        cache_size: scenes kept per process (``None`` = all).

    Sample ``i`` uses scene ``i mod len(scenes)`` (as the reference); the mix-up partner is a uniformly drawn
    scene.
    """

    def __init__(self, scenes: Sequence[CaffeScene], context_size: int, target_size: int, samples_per_epoch: int,
                 augment: AugmentParams | None = None, seed: int = 0, cache_size: int | None = None) -> None:
        super().__init__(samples_per_epoch, seed)
        if not scenes:
            raise ValueError("CaffeTrainDataset needs at least one scene")
        if target_size > context_size:
            raise ValueError(f"target_size {target_size} larger than context_size {context_size}")
        self.scenes = list(scenes)
        self.context_size = int(context_size)
        self.target_size = int(target_size)
        self.augment = augment if augment is not None else AugmentParams()
        self._cache = _SceneCache(self.scenes, cache_size)

    def preload(self, progress: bool = True) -> None:
        """Load every scene now (in the main process, so that forked workers share the arrays)."""
        self._cache.preload(progress)

    def _mixup_source(self, rng: np.random.Generator) -> np.ndarray:
        j = int(rng.integers(len(self.scenes)))
        image, _ = self._cache[j]
        pad = whole_image_padding(image.shape, self.context_size)
        crop, _ = random_context_crop(image, None, self.context_size, rng, prob_rezoom=self.augment.prob_rezoom,
                                      zoom_range=self.augment.zoom_range, padding=pad,
                                      antialias=self.augment.antialias)
        return crop

    def sample(self, epoch: int, index: int) -> dict[str, Any]:
        rng = sample_rng(self.seed, epoch, index)
        scene_idx = index % len(self.scenes)
        image, zones = self._cache[scene_idx]
        ctx, msk = finetune_sample(image, zones, self.context_size, self.target_size, rng, self.augment,
                                   self._mixup_source)
        return {
            "image_context": _to_image_tensor(ctx),
            "mask_context": _to_mask_tensor(msk),
            "image": _to_image_tensor(centre_crop(ctx, self.target_size)),
            "mask": _to_mask_tensor(centre_crop(msk, self.target_size)),
            "stem": self.scenes[scene_idx].stem,
        }


class _WindowIndex:
    """Maps a flat index to ``(item, window)`` over per-item window grids."""

    def __init__(self, grids: Sequence[WindowGrid]) -> None:
        self.grids = list(grids)
        counts = np.array([len(g) for g in self.grids], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        item = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return item, int(index - self.offsets[item])


class CaffeValDataset(Dataset):
    """Non-overlapping validation windows (§3.4) over CaFFe scenes, no augmentation.

    Each item is window ``k`` of one scene, with ``stem``, ``window``, ``origin``, ``centre_origin`` and
    ``image_shape`` so that the centre predictions can be stitched (:meth:`grid` gives a scene's window grid).
    """

    def __init__(self, scenes: Sequence[CaffeScene], target_size: int, cache_size: int | None = 4) -> None:
        if not scenes:
            raise ValueError("CaffeValDataset needs at least one scene")
        self.scenes = list(scenes)
        self.target_size = int(target_size)
        self.context_size = 2 * self.target_size
        self._index = _WindowIndex([validation_windows(sar_shape(s.sar_path), self.target_size)
                                    for s in self.scenes])
        self._cache = _SceneCache(self.scenes, cache_size)

    def __len__(self) -> int:
        return len(self._index)

    def grid(self, scene_index: int) -> WindowGrid:
        """The window grid of scene ``scene_index``."""
        return self._index.grids[scene_index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        s, k = self._index.locate(int(index))
        grid = self._index.grids[s]
        image, zones = self._cache[s]
        if image.shape != grid.image_shape:
            raise DataError(self.scenes[s].sar_path, f"image changed size since the dataset was built "
                            f"({image.shape} vs {grid.image_shape})")
        ctx = grid.context(image, k)
        msk = grid.context(zones, k)
        return {
            "image_context": _to_image_tensor(ctx),
            "mask_context": _to_mask_tensor(msk),
            "image": _to_image_tensor(centre_crop(ctx, self.target_size)),
            "mask": _to_mask_tensor(centre_crop(msk, self.target_size)),
            "stem": self.scenes[s].stem,
            "window": k,
            "origin": torch.as_tensor(grid.origins[k], dtype=torch.int64),
            "centre_origin": torch.as_tensor(grid.centre_origins()[k], dtype=torch.int64),
            "image_shape": torch.as_tensor(grid.image_shape, dtype=torch.int64),
        }


def _available_memory_bytes() -> int | None:
    """The kernel's estimate of memory available without swapping (Linux ``MemAvailable``); ``None`` elsewhere."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class OpticalImages:
    """The normalised 14-band optical images of a pretraining pool, by file: read on first use and kept.

    A glacier has one optical image and hundreds of SAR images, and the training sampler draws pairs in random
    order, so every glacier's optical image is needed again and again. Reading and normalising one takes about
    0.6 s for a 2-megapixel glacier, 15 times the rest of a sample.

    Args:
        max_items: keep at most this many per process, dropping the least recently used (``None``: keep all).

    :meth:`preload` reads the given files now and keeps every image from then on. Called in the main process
    before the DataLoader workers start, the (forked) workers share these arrays instead of each reading and
    normalising every glacier.
    """

    def __init__(self, max_items: int | None = None) -> None:
        self.max_items = None if max_items is None else max(1, int(max_items))
        self._items: OrderedDict[Path, tuple[np.ndarray, Any]] = OrderedDict()
        self.reads = 0  # files read and normalised by this process (what the cache saves is reads / uses)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """Bytes held by the kept images."""
        return sum(arr.nbytes for arr, _ in self._items.values())

    def get(self, path: str | Path) -> tuple[np.ndarray, Any]:
        """``(optical (14, H, W) uint8, RasterInfo)`` of ``path``."""
        path = Path(path)
        item = self._items.get(path)
        if item is not None:
            self._items.move_to_end(path)
            return item
        item = read_optical(path)
        self.reads += 1
        self._items[path] = item
        if self.max_items is not None and len(self._items) > self.max_items:
            self._items.popitem(last=False)
        return item

    def preload(self, paths: Iterable[str | Path], progress: bool = True) -> bool:
        """Read every distinct file of ``paths`` now and keep all of them; ``False`` (and nothing read) when their
        normalised arrays (14 bytes per pixel) would take more than half of the memory available now."""
        distinct = list(dict.fromkeys(Path(p) for p in paths))
        needed = sum(14 * int(np.prod(read_raster_info(p).shape)) for p in distinct if p not in self._items)
        available = _available_memory_bytes()
        if available is not None and needed > available // 2:
            log.warning("not preloading %d optical image(s): they need %.1f GB, and %.1f GB of memory is available; "
                        "each data-loader worker reads them on demand instead (slower)", len(distinct), needed / 1e9,
                        available / 1e9)
            return False
        self.max_items = None
        for p in tqdm(distinct, desc="loading optical images", disable=not progress, leave=False):
            self.get(p)
        return True


class _PairCache:
    """Per-process loader of SSL4SAR pairs: optical images from an :class:`OpticalImages`, SAR optionally
    cached (LRU), grid of each pair checked once."""

    def __init__(self, optical: OpticalImages, sar_cache_size: int = 0) -> None:
        self.optical = optical
        self.sar_cache_size = int(sar_cache_size)
        self._sar: OrderedDict[Any, np.ndarray] = OrderedDict()
        self._checked: set[Any] = set()

    def load(self, pair: UnlabeledPair) -> tuple[np.ndarray, np.ndarray]:
        optical, optical_info = self.optical.get(pair.optical_path)
        sar = self._sar.get(pair.sar_path)
        if sar is None:
            sar, sar_info = read_unlabeled_sar(pair.sar_path)
            if pair.sar_path not in self._checked:
                check_pair_grid(pair, sar.shape, sar_info, optical_info)
                self._checked.add(pair.sar_path)
            if self.sar_cache_size > 0:
                self._sar[pair.sar_path] = sar
                if len(self._sar) > self.sar_cache_size:
                    self._sar.popitem(last=False)
        return sar, optical

    def sar_cut(self, pair: UnlabeledPair, crop: PretrainCrop, optical_info: Any) -> np.ndarray:
        """The SAR pixels of ``crop`` (:meth:`PretrainCrop.cut`); ``optical_info``: the pair's optical image's
        RasterInfo. Of a GeoTIFF that is not cached only the window the crop covers is read: a tenth of a
        2-megapixel image for a 512 px crop."""
        if self.sar_cache_size > 0 or pair.sar_path.suffix.lower() == ".png":
            sar, _ = self.load(pair)
            return crop.cut(sar)
        if pair.sar_path not in self._checked:
            sar_info = read_raster_info(pair.sar_path)
            check_pair_grid(pair, sar_info.shape, sar_info, optical_info)
            self._checked.add(pair.sar_path)
        window = crop.source_window(optical_info.shape)
        sar, _ = read_unlabeled_sar(pair.sar_path, window)
        return crop.cut(sar, (window[0][0], window[1][0]), optical_info.shape)


class UnlabeledTrainDataset(_EpochKeyed):
    """Random pretraining samples (§2.3): SAR crop and the co-registered 14-band optical crop.

    Sample ``i`` uses pair ``i mod len(pairs)`` (as the reference). Optical images come from ``optical_images``
    (shared with other datasets), else from a per-process cache of ``optical_cache_size`` glaciers; :meth:`preload`
    reads all of them now. SAR images are read per sample unless ``sar_cache_size > 0``.
    """

    def __init__(self, pairs: Sequence[UnlabeledPair], context_size: int, samples_per_epoch: int, *,
                 min_scale: float = _PAPER.min_scale, prob_flip: float = _PAPER.prob_flip, seed: int = 0,
                 optical_cache_size: int = 4, sar_cache_size: int = 0,
                 optical_images: OpticalImages | None = None) -> None:
        super().__init__(samples_per_epoch, seed)
        if not pairs:
            raise ValueError("UnlabeledTrainDataset needs at least one SAR/optical pair")
        if not 0.0 < min_scale <= 1.0:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale}")
        self.pairs = list(pairs)
        self.context_size = int(context_size)
        self.min_scale = float(min_scale)
        self.prob_flip = float(prob_flip)
        self.optical_images = optical_images if optical_images is not None else OpticalImages(optical_cache_size)
        self._cache = _PairCache(self.optical_images, sar_cache_size)

    def preload(self, progress: bool = True) -> bool:
        """Read every optical image of the pairs now (see :meth:`OpticalImages.preload`)."""
        return self.optical_images.preload((p.optical_path for p in self.pairs), progress)

    def sample(self, epoch: int, index: int) -> dict[str, Any]:
        rng = sample_rng(self.seed, epoch, index)
        pair = self.pairs[index % len(self.pairs)]
        optical, optical_info = self.optical_images.get(pair.optical_path)
        # random_pretrain_crop's draws, made before the SAR image is read, so that only the crop's window is read
        crop = draw_pretrain_crop(optical.shape[-2:], self.context_size, rng, min_scale=self.min_scale,
                                  prob_flip=self.prob_flip)
        s, o = crop.apply(self._cache.sar_cut(pair, crop, optical_info), crop.cut(optical))
        return {"sar": _to_image_tensor(s), "optical": _to_image_tensor(o), "name": pair.name}


class UnlabeledValDataset(Dataset):
    """Pretraining validation windows (§2.4): stride ``C/2`` grid of ``C × C`` windows over each pair."""

    def __init__(self, pairs: Sequence[UnlabeledPair], context_size: int, optical_cache_size: int = 2, *,
                 optical_images: OpticalImages | None = None) -> None:
        if not pairs:
            raise ValueError("UnlabeledValDataset needs at least one SAR/optical pair")
        self.pairs = list(pairs)
        self.context_size = int(context_size)
        self._index = _WindowIndex([pretrain_validation_windows(sar_shape(p.sar_path), self.context_size)
                                    for p in self.pairs])
        self.optical_images = optical_images if optical_images is not None else OpticalImages(optical_cache_size)
        self._cache = _PairCache(self.optical_images, sar_cache_size=2)

    def __len__(self) -> int:
        return len(self._index)

    def grid(self, pair_index: int) -> WindowGrid:
        return self._index.grids[pair_index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        p, k = self._index.locate(int(index))
        grid = self._index.grids[p]
        sar, optical = self._cache.load(self.pairs[p])
        return {
            "sar": _to_image_tensor(grid.context(sar, k)),
            "optical": _to_image_tensor(grid.context(optical, k)),
            "name": f"{self.pairs[p].name}_{k:03d}",
            "window": k,
            "origin": torch.as_tensor(grid.origins[k], dtype=torch.int64),
        }
