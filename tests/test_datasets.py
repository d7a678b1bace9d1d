"""Datasets, the epoch sampler and the DataModules (batch contracts of ARCHITECTURE.md)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import write_caffe, write_unlabeled
from torch.utils.data import DataLoader

from ssl4sar.data.augment import AugmentParams
from ssl4sar.data.caffe import discover, load_scene
from ssl4sar.data.datamodules import CaffeDataModule, PretrainDataModule, evenly_spaced
from ssl4sar.data.datasets import (
    CaffeTrainDataset,
    CaffeValDataset,
    EpochSampler,
    UnlabeledTrainDataset,
    UnlabeledValDataset,
)
from ssl4sar.data.unlabeled import discover_unlabeled, read_optical

C, T = 64, 32


@pytest.fixture(scope="module")
def caffe_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("caffe")
    write_caffe(root, n_train=6, n_test=1, shape=(70, 90))
    return root


@pytest.fixture(scope="module")
def ssl_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssl4sar")
    write_unlabeled(root, glaciers=("Helheim", "Kanger"), n_train=2, n_val=1, shape=(50, 70))
    return root


def _train_ds(root, n=24, seed=0, augment=None) -> CaffeTrainDataset:
    return CaffeTrainDataset(discover(root, "train"), C, T, n, augment, seed=seed)


def test_train_sample_contract(caffe_root) -> None:
    ds = _train_ds(caffe_root)
    assert len(ds) == 24
    s = ds[3]
    assert set(s) == {"image_context", "mask_context", "image", "mask", "stem"}
    assert s["image_context"].shape == (1, C, C) and s["image_context"].dtype == torch.float32
    assert s["mask_context"].shape == (C, C) and s["mask_context"].dtype == torch.int64
    assert s["image"].shape == (1, T, T) and s["mask"].shape == (T, T) and s["mask"].dtype == torch.int64
    assert 0.0 <= float(s["image_context"].min()) and float(s["image_context"].max()) <= 1.0
    off = (C - T) // 2
    torch.testing.assert_close(s["image"], s["image_context"][:, off:off + T, off:off + T])
    torch.testing.assert_close(s["mask"], s["mask_context"][off:off + T, off:off + T])
    assert s["stem"] == ds.scenes[3 % len(ds.scenes)].stem
    for i in range(len(ds)):
        assert set(torch.unique(ds[i]["mask_context"]).tolist()) <= {0, 1, 2, 3}


def test_train_image_stays_aligned_with_mask(caffe_root) -> None:
    """Fake scenes have image = 40 + 50·class (+ <5 noise); geometric augmentations keep that relation."""
    params = AugmentParams(prob_rezoom=0.0, prob_mixup=0.0, prob_speckle=0.0, prob_brightness=0.0, prob_gamma=0.0)
    ds = _train_ds(caffe_root, augment=params)
    for i in range(12):
        s = ds[i]
        img = (s["image_context"][0] * 255).round().to(torch.int64)
        valid = s["mask_context"] > 0
        expected = 40 + 50 * s["mask_context"]
        diff = (img - expected)[valid]
        assert int(diff.min()) >= 0 and int(diff.max()) < 5
        assert torch.all(img[~valid] == 0)


def test_samples_are_pure_functions_of_seed_epoch_index(caffe_root) -> None:
    a, b = _train_ds(caffe_root), _train_ds(caffe_root)
    n = len(a)
    torch.testing.assert_close(a[5]["image_context"], b[5]["image_context"])
    torch.testing.assert_close(a[n + 5]["image_context"], a.sample(1, 5)["image_context"])
    assert not torch.equal(a[5]["image_context"], a[n + 5]["image_context"])
    c = _train_ds(caffe_root, seed=1)
    assert not torch.equal(a[5]["image_context"], c[5]["image_context"])


def test_epoch_sampler_keys_and_sharding(caffe_root) -> None:
    ds = _train_ds(caffe_root, n=10)
    s = EpochSampler(ds)
    s.set_epoch(2)
    keys = list(s)
    assert sorted(keys) == list(range(20, 30))
    s.set_epoch(3)
    assert sorted(s) == list(range(30, 40)) and list(s) != [k + 10 for k in keys]
    r0, r1, r2 = (EpochSampler(ds, num_replicas=3, rank=r) for r in range(3))
    for r in (r0, r1, r2):
        r.set_epoch(1)
    parts = [list(r) for r in (r0, r1, r2)]
    assert all(len(p) == 4 for p in parts) and len(r0) == 4
    assert set().union(*parts) == set(range(10, 20))


def test_results_do_not_depend_on_worker_count(caffe_root) -> None:
    ds = _train_ds(caffe_root, n=8, seed=3)
    batches = {}
    for workers in (0, 2):
        sampler = EpochSampler(ds)
        sampler.set_epoch(1)
        loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=workers)
        batches[workers] = list(loader)
    for b0, b2 in zip(batches[0], batches[2]):
        assert b0["stem"] == b2["stem"]
        torch.testing.assert_close(b0["image_context"], b2["image_context"])
        torch.testing.assert_close(b0["mask_context"], b2["mask_context"])


def test_val_windows_stitch_back_to_the_scene(caffe_root) -> None:
    scenes = discover(caffe_root, "trainval")[:3]
    ds = CaffeValDataset(scenes, T)
    assert len(ds) == sum(len(ds.grid(i)) for i in range(3))
    canvases = {s.stem: np.full(load_scene(s)["zones"].shape, -1, dtype=np.int64) for s in scenes}
    images = {s.stem: np.full(load_scene(s)["zones"].shape, -1.0) for s in scenes}
    ks = {}
    for i in range(len(ds)):
        item = ds[i]
        assert item["image_context"].shape == (1, C, C) and item["mask"].shape == (T, T)
        assert item["window"] == ks.get(item["stem"], 0)
        ks[item["stem"]] = item["window"] + 1
        r0, c0 = item["centre_origin"].tolist()
        h, w = item["image_shape"].tolist()
        rs, cs = slice(max(r0, 0), min(r0 + T, h)), slice(max(c0, 0), min(c0 + T, w))
        canvas = canvases[item["stem"]]
        assert np.all(canvas[rs, cs] == -1)  # each pixel written once
        canvas[rs, cs] = item["mask"].numpy()[rs.start - r0:rs.stop - r0, cs.start - c0:cs.stop - c0]
        images[item["stem"]][rs, cs] = item["image"][0].numpy()[rs.start - r0:rs.stop - r0, cs.start - c0:cs.stop - c0]
    for s in scenes:
        data = load_scene(s)
        np.testing.assert_array_equal(canvases[s.stem], data["zones"])
        np.testing.assert_allclose(images[s.stem], data["image"] / 255.0, atol=1e-6)


def test_unlabeled_train_dataset(ssl_root) -> None:
    pairs = discover_unlabeled(ssl_root, "train")
    ds = UnlabeledTrainDataset(pairs, 32, 10, seed=4)
    s = ds[7]
    assert set(s) == {"sar", "optical", "name"}
    assert s["sar"].shape == (1, 32, 32) and s["optical"].shape == (14, 32, 32)
    assert s["sar"].dtype == torch.float32 and 0 <= float(s["optical"].min()) <= float(s["optical"].max()) <= 1
    assert s["name"] == pairs[7 % len(pairs)].name
    again = UnlabeledTrainDataset(pairs, 32, 10, seed=4)[7]
    torch.testing.assert_close(s["optical"], again["optical"])
    torch.testing.assert_close(s["sar"], again["sar"])


def test_unlabeled_val_windows_stitch_back(ssl_root) -> None:
    pairs = discover_unlabeled(ssl_root, "val")
    ds = UnlabeledValDataset(pairs, 32)
    optical, _ = read_optical(pairs[0].optical_path)
    grid = ds.grid(0)
    h, w = grid.image_shape
    canvas = np.full((14, h, w), -1.0)
    for k in range(len(grid)):
        item = ds[k]
        assert item["name"] == f"{pairs[0].name}_{k:03d}" and item["sar"].shape == (1, 32, 32)
        r0, c0 = grid.centre_origins()[k]
        rs, cs = slice(max(r0, 0), min(r0 + 16, h)), slice(max(c0, 0), min(c0 + 16, w))
        centre = item["optical"][:, 8:24, 8:24].numpy()
        canvas[:, rs, cs] = centre[:, rs.start - r0:rs.stop - r0, cs.start - c0:cs.stop - c0]
    np.testing.assert_allclose(canvas, optical / 255.0, atol=1e-6)


def test_caffe_datamodule(caffe_root) -> None:
    dm = CaffeDataModule.from_preset(caffe_root, "smoke")
    dm.setup("fit")
    assert dm.context_size == 64 and dm.target_size == 32 and dm.batch_size == 4
    assert len(dm.train_scenes) == 5 and len(dm.val_scenes) == 1
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, EpochSampler) and loader.drop_last
    batch = next(iter(loader))
    assert batch["image_context"].shape == (4, 1, 64, 64) and batch["mask"].shape == (4, 32, 32)
    assert len(batch["stem"]) == 4
    vbatch = next(iter(dm.val_dataloader()))
    assert vbatch["centre_origin"].shape == (4, 2) and vbatch["window"].tolist() == [0, 1, 2, 3]
    assert len(list(loader)) == 16 // 4
    with pytest.raises(Exception, match="559"):
        CaffeDataModule.from_preset(caffe_root, "smoke", strict_split=True).setup("fit")


def test_pretrain_datamodule(ssl_root) -> None:
    dm = PretrainDataModule.from_preset(ssl_root, "smoke", overrides={"pretrain.batch_size_per_device": 2})
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["sar"].shape == (2, 1, 64, 64) and batch["optical"].shape == (2, 14, 64, 64)
    vbatch = next(iter(dm.val_dataloader()))
    assert vbatch["optical"].shape[1:] == (14, 64, 64)


def test_pretrain_validation_pairs_are_capped_by_the_preset(tmp_path) -> None:
    write_unlabeled(tmp_path, glaciers=("Helheim", "Kanger"), n_train=1, n_val=3, shape=(50, 70))
    every = PretrainDataModule.from_preset(tmp_path, "smoke")
    every.setup("validate")
    assert len(every.val_pairs) == 6
    capped = PretrainDataModule.from_preset(tmp_path, "smoke", overrides={"pretrain.val_max_pairs": 2})
    capped.setup("validate")
    # evenly spaced over the sorted pool: one pair of each glacier, not the first two of one
    assert [p.name for p in capped.val_pairs] == [every.val_pairs[0].name, every.val_pairs[3].name]
    assert len(capped.val_dataset) < len(every.val_dataset)
    with pytest.raises(ValueError, match="val_max_pairs must be at least 1"):
        evenly_spaced([1, 2, 3], 0)
    assert evenly_spaced([1, 2, 3], None) == [1, 2, 3] and evenly_spaced([1, 2, 3], 5) == [1, 2, 3]


SIX_GLACIERS = ("Helheim", "Kanger", "Jakobshavn", "Petermann", "Ryder", "Zachariae")  # more than a worker's LRU


@pytest.fixture()
def optical_reads(monkeypatch, tmp_path):
    """Log every optical read to a file, so that reads in forked DataLoader workers are counted too."""
    import ssl4sar.data.datasets as datasets_module

    log_file = tmp_path / "optical_reads.txt"
    real = datasets_module.read_optical

    def logged(path):
        with open(log_file, "a") as f:
            f.write(f"{os.getpid()} {Path(path).name}\n")
        return real(path)

    monkeypatch.setattr(datasets_module, "read_optical", logged)
    return lambda: [line.split() for line in log_file.read_text().splitlines()] if log_file.exists() else []


def test_pretrain_datamodule_reads_each_optical_image_once(tmp_path, optical_reads) -> None:
    """Pairs are drawn in random order and a glacier's optical image is needed again and again: the data module
    reads each one once, in setup, and its workers share the arrays (before: each worker kept 4 and re-read the
    rest, 0.6 s per 2-MP glacier, 15x a whole sample)."""
    write_unlabeled(tmp_path, glaciers=SIX_GLACIERS, n_train=3, n_val=1, shape=(50, 70))
    dm = PretrainDataModule.from_preset(tmp_path, "smoke", overrides={"pretrain.batch_size_per_device": 2,
                                                                      "pretrain.num_workers": 2})
    dm.setup("fit")
    main = str(os.getpid())
    assert sorted(name for _, name in optical_reads()) == sorted(f"{g}_S2_2020-07-01.tif" for g in SIX_GLACIERS)
    loader = dm.train_dataloader()
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        batches = list(loader)
    val_batches = list(dm.val_dataloader())
    assert len(batches) == dm.samples_per_epoch // 2 and val_batches
    assert [pid for pid, _ in optical_reads()] == [main] * 6  # nothing read again, in no process
    # the same samples as a dataset that reads lazily
    lazy = UnlabeledTrainDataset(dm.train_pairs, dm.context_size, dm.samples_per_epoch, seed=dm.seed)
    for key in (0, 5, 17):
        torch.testing.assert_close(dm.train_dataset[key]["optical"], lazy[key]["optical"], rtol=0, atol=0)
        torch.testing.assert_close(dm.train_dataset[key]["sar"], lazy[key]["sar"], rtol=0, atol=0)


def test_lazy_optical_images_are_bounded_per_worker(tmp_path, optical_reads) -> None:
    """preload=False keeps the old memory bound: a least-recently-used set of 4 optical images per process."""
    write_unlabeled(tmp_path, glaciers=SIX_GLACIERS, n_train=1, n_val=1, shape=(50, 70))
    dm = PretrainDataModule.from_preset(tmp_path, "smoke", preload=False)
    dm.setup("fit")
    assert optical_reads() == []
    for key in range(12):  # pair k % 6: two rounds over 6 glaciers through an LRU of 4 re-read every glacier
        dm.train_dataset[key]
    assert len(optical_reads()) == 12


def test_optical_preload_is_skipped_when_memory_is_short(tmp_path, optical_reads, monkeypatch, caplog) -> None:
    """Preloading a pool larger than half the available memory would end in an out-of-memory kill: it is skipped
    with a warning that says how much it needs, and the images are read on demand."""
    import ssl4sar.data.datasets as datasets_module

    write_unlabeled(tmp_path, glaciers=SIX_GLACIERS[:2], n_train=1, n_val=1, shape=(50, 70))
    needed = 2 * 14 * 50 * 70
    monkeypatch.setattr(datasets_module, "_available_memory_bytes", lambda: 2 * needed - 2)
    dm = PretrainDataModule.from_preset(tmp_path, "smoke")
    with caplog.at_level("WARNING"):
        dm.setup("fit")
    assert optical_reads() == [] and "not preloading 2 optical image(s)" in caplog.text
    dm.train_dataset[0]
    assert len(optical_reads()) == 1
    monkeypatch.setattr(datasets_module, "_available_memory_bytes", lambda: 2 * needed)
    assert dm.train_dataset.preload(progress=False) and len(dm.optical_images) == 2
    assert len(optical_reads()) == 2  # the one already read is not read again


@pytest.mark.parametrize("context", [32, 64])  # 64 > the 50 x 70 image: the crop reaches into the mirrored padding
@pytest.mark.parametrize("sar_format", ["tif", "png"])
def test_pretrain_samples_from_sar_windows_equal_those_from_whole_images(tmp_path, monkeypatch, context,
                                                                          sar_format) -> None:
    """Training samples read only the crop's window of a SAR GeoTIFF; they equal the samples cut from the whole
    image (what a SAR cache, the validation set and a PNG use)."""
    import ssl4sar.data.datasets as datasets_module

    write_unlabeled(tmp_path, glaciers=("Helheim", "Kanger"), n_train=2, n_val=1, shape=(50, 70),
                    sar_format=sar_format)
    pairs = discover_unlabeled(tmp_path, "train")
    windows = []
    real = datasets_module.read_unlabeled_sar
    monkeypatch.setattr(datasets_module, "read_unlabeled_sar",
                        lambda path, window=None: (windows.append(window), real(path, window))[1])
    windowed = UnlabeledTrainDataset(pairs, context, 40, seed=3)
    whole = UnlabeledTrainDataset(pairs, context, 40, seed=3, sar_cache_size=1)
    samples = [windowed[key] for key in range(40)]
    read_windows = [w for w in windows if w is not None]
    for key, a in enumerate(samples):
        b = whole[key]
        torch.testing.assert_close(a["sar"], b["sar"], rtol=0, atol=0)
        torch.testing.assert_close(a["optical"], b["optical"], rtol=0, atol=0)
    if sar_format == "png":
        assert not read_windows  # decoded whole
    else:
        assert len(read_windows) == 40
        if context == 32:  # a 22-31 px crop of a 50 x 70 image reads a part of it
            assert all((r1 - r0) * (c1 - c0) < 50 * 70 for (r0, r1), (c0, c1) in read_windows)


def test_pretrain_sar_window_reads_check_the_pair_grid(tmp_path) -> None:
    """A SAR GeoTIFF off its optical image's grid, or not 8-bit, is refused by name before any window is read."""
    from affine import Affine
    from fakes import write_geotiff

    from ssl4sar.data.raster import read_raster_info
    from ssl4sar.errors import DataError

    write_unlabeled(tmp_path, glaciers=("Helheim",), n_train=1, n_val=1, shape=(40, 60))
    pair = discover_unlabeled(tmp_path, "train")[0]
    info = read_raster_info(pair.optical_path)
    sar = np.full((40, 60), 7, np.uint8)
    for bad, match in ((dict(array=sar, transform=Affine(20.0, 0.0, -1e5, 0.0, -20.0, -2e6)), "geotransform"),
                       (dict(array=sar[:, :-1], transform=info.transform), "differs"),
                       (dict(array=sar.astype(np.float32), transform=info.transform), "uint8")):
        write_geotiff(pair.sar_path, bad["array"], transform=bad["transform"])
        with pytest.raises(DataError, match=match) as err:
            UnlabeledTrainDataset([pair], 32, 4, seed=0)[1]
        assert str(pair.sar_path) in str(err.value)
