"""Sliding-window inference, non-overlapping tiles, TTA and ensembles (§7.1, §9).

A *pointwise* stand-in network (logits of a pixel depend only on that pixel's value) makes every window agree on
every pixel, so the stitched probabilities must equal the softmax of the network applied to the whole image: any
misalignment of padding, window grid, centre crop or crop-back shows up as a difference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from memory import traced_peak
from scipy.ndimage import gaussian_filter

from ssl4sar.data.sampling import overlapping_padding_stages, pad_overlapping, whole_image_padding
from ssl4sar.errors import OutOfMemory
from ssl4sar.inference import (
    EnsemblePrediction,
    RunningMoments,
    class_map,
    gaussian_importance_map,
    non_overlapping_class_map,
    non_overlapping_grid,
    predict_probabilities,
    predict_with_and_without_tta,
    sliding_window_probabilities,
    stitch_non_overlapping,
    tile_index,
    window_origins,
)


class Pointwise(torch.nn.Module):
    """logits[k] = a_k·x + b_k·x² + c_k (per pixel)."""

    def __init__(self, seed: int = 0, k: int = 4) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(3, k, generator=g) * 3)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 4 and x.shape[1] == 1 and x.dtype == torch.float32
        self.calls += 1
        feats = torch.cat([x, x * x, torch.ones_like(x)], dim=1)  # (B, 3, C, C)
        return torch.einsum("bfhw,fk->bkhw", feats, self.w)

    def direct(self, image01: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(image01.astype(np.float32))[None, None]
            return torch.softmax(self(x), dim=1)[0].numpy()


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w)) * 255).astype(np.uint8)


def test_gaussian_importance_map_matches_its_definition():
    g = gaussian_importance_map(256)
    assert g.dtype == np.float32 and g.shape == (256, 256)
    assert g.max() == pytest.approx(1.0) and g[128, 128] == g.max()
    assert g.min() > 0
    delta = np.zeros((256, 256))
    delta[128, 128] = 1
    ref = gaussian_filter(delta, 32.0, 0, mode="constant")
    np.testing.assert_allclose(g, (ref / ref.max()).astype(np.float32), rtol=1e-6)
    # small map with truncated support: zeros replaced by the smallest non-zero value
    g2 = gaussian_importance_map(64, sigma=2.0)
    assert g2.min() > 0 and (g2 == g2.min()).sum() > 100
    assert gaussian_importance_map((32, 48)).shape == (32, 48)


@pytest.mark.parametrize("h", [1, 37, 255, 256, 257, 300, 700])
def test_overlapping_padding_geometry(h):
    first, second = overlapping_padding_stages((h, 10), 512, 128)
    p, q, extra = first.top, first.bottom, second.bottom
    assert p == q == 128 and second.top == 0
    size = h + p + q + extra
    assert size >= 512 and (size - 512) % 128 == 0
    if h + 256 >= 512:  # the reference's formula: 1..128 px
        assert extra == 128 - ((h + 256 - 512) % 128)
    # the last window's centre reaches the image's last row
    last = window_origins((size, 512), 512, 128)[-1][0]
    assert last + 256 >= h
    assert pad_overlapping(np.zeros((h, 10), np.uint8), 512, 128).shape[0] == size


def test_pad_overlapping_is_symmetric_twice():
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    padded = pad_overlapping(img, context_size=8, stride=2)  # p = 2
    assert np.array_equal(padded[2:5, 2:6], img)
    assert np.array_equal(padded[1, 2:6], img[0]) and np.array_equal(padded[0, 2:6], img[1])  # mirror incl. edge
    a = np.pad(img, 2, mode="symmetric")
    assert np.array_equal(padded[: a.shape[0], : a.shape[1]], a)


@pytest.mark.parametrize(("h", "w", "context", "stride"), [
    (70, 90, 64, 16), (33, 20, 64, 32), (5, 7, 32, 16), (64, 64, 64, 32), (97, 41, 32, 8)])
def test_sliding_window_equals_direct_prediction_for_pointwise_model(h, w, context, stride):
    model = Pointwise(seed=h)
    img = image(h, w, seed=w)
    prob = sliding_window_probabilities(model, img, context_size=context, stride=stride, batch_size=3)
    assert prob.shape == (4, h, w) and prob.dtype == np.float32
    np.testing.assert_allclose(prob, model.direct(img / 255.0), atol=2e-6)
    np.testing.assert_allclose(prob.sum(axis=0), 1.0, atol=1e-5)


def test_sliding_window_inference_autotunes_cudnn_only_when_asked(monkeypatch):
    """The benchmark's reference path runs the official code's inference, which never switches cuDNN's autotuning
    on; the library's inference does. The flag is checked where it matters, inside the forward pass, with the
    device treated as CUDA (the flag alone: nothing runs on a GPU)."""
    import ssl4sar.inference as inference
    from ssl4sar.models.fast import cudnn_autotuning

    monkeypatch.setattr(inference, "cudnn_autotuning", lambda device, enabled=True: cudnn_autotuning("cuda", enabled))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    flags = []

    class FlagSpy(Pointwise):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            flags.append(torch.backends.cudnn.benchmark)
            return super().forward(x)

    model = FlagSpy(seed=3)
    for asked in (None, True, False):
        flags.clear()
        kwargs = {} if asked is None else {"cudnn_autotune": asked}
        sliding_window_probabilities(model, image(40, 40), context_size=32, stride=8, workers=1, **kwargs)
        assert flags and set(flags) == {asked is not False}  # on by default
        assert torch.backends.cudnn.benchmark is False  # restored


def test_sliding_window_float_input_batch_invariance_and_devices():
    model = Pointwise(seed=5)
    img = image(50, 60).astype(np.float32) / 255.0
    a = sliding_window_probabilities(model, img, context_size=32, stride=8, batch_size=1)
    b = sliding_window_probabilities(model, torch.from_numpy(img), context_size=32, stride=8, batch_size=64,
                                     device="cpu", canvas_device="cpu")
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a, model.direct(img), atol=2e-6)
    c = sliding_window_probabilities(model, img, context_size=32, stride=8, amp_dtype=torch.bfloat16)
    assert np.abs(c - a).max() < 0.05  # bf16 autocast on CPU runs and stays close


def test_sliding_window_weights_windows_with_the_gaussian():
    """A model whose output depends on the position inside the window: the result is the g-weighted mean."""

    class Ramp(torch.nn.Module):
        def forward(self, x):
            b, _, c, _ = x.shape
            rows = torch.arange(c, dtype=torch.float32).view(1, 1, c, 1).expand(b, 1, c, c)
            return torch.cat([rows / 4.0, torch.zeros_like(rows)], dim=1)

    h, w, c, s = 24, 20, 32, 8
    t, p = c // 2, c // 4
    prob = sliding_window_probabilities(Ramp(), np.zeros((h, w), np.uint8), context_size=c, stride=s)
    g = gaussian_importance_map(t)
    padded_shape = pad_overlapping(np.zeros((h, w)), c, s).shape
    num = np.zeros((h, w))
    den = np.zeros((h, w))
    centre = 1 / (1 + np.exp(-(np.arange(p, p + t) / 4.0)))  # softmax of [r/4, 0] for the centre rows
    for r, col in window_origins(padded_shape, c, s):
        for i in range(t):
            for j in range(t):
                y, x = r + i, col + j
                if y < h and x < w:
                    num[y, x] += centre[i] * g[i, j]
                    den[y, x] += g[i, j]
    np.testing.assert_allclose(prob[0], num / den, atol=1e-5)


def test_sliding_window_restores_training_mode_and_validates():
    model = Pointwise()
    model.train()
    sliding_window_probabilities(model, image(10, 10), context_size=16, stride=8)
    assert model.training
    with pytest.raises(ValueError, match="stride"):
        sliding_window_probabilities(model, image(10, 10), context_size=16, stride=9)
    with pytest.raises(ValueError, match="even"):
        sliding_window_probabilities(model, image(10, 10), context_size=15, stride=4)
    with pytest.raises(ValueError, match="logits"):
        sliding_window_probabilities(lambda x: x[:, :, :4, :4], image(10, 10), context_size=16, stride=8)
    with pytest.raises(ValueError, match="image"):
        sliding_window_probabilities(model, np.zeros((2, 3, 4)), context_size=16, stride=8)


@pytest.mark.parametrize("workers", [1, 2])
def test_sliding_window_out_of_memory_names_the_setting_to_lower(workers):
    def no_memory(x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB")

    with pytest.raises(OutOfMemory) as info:
        sliding_window_probabilities(no_memory, image(40, 50), context_size=16, stride=8, batch_size=6,
                                     workers=workers)
    text = str(info.value)
    assert text.startswith("sliding-window inference of a 40 × 50 px image ran out of memory on the CPU with 6 windows "
                           "of 16 px per forward pass")
    assert ("in 2 parallel passes" in text) is (workers == 2)
    assert "--batch-size; e.g. 3: the same windows, fewer at a time" in text
    assert isinstance(info.value.__cause__, torch.OutOfMemoryError)

    def broken(x):
        raise RuntimeError("not an allocation failure")

    with pytest.raises(RuntimeError, match="not an allocation failure") as other:
        sliding_window_probabilities(broken, image(40, 50), context_size=16, stride=8, workers=workers)
    assert not isinstance(other.value, OutOfMemory)


def test_tuple_output_and_plain_callable_models():
    model = Pointwise(seed=2)
    img = image(20, 30)
    a = sliding_window_probabilities(model, img, context_size=16, stride=8)
    b = sliding_window_probabilities(lambda x: (model(x), None), img, context_size=16, stride=8)
    np.testing.assert_allclose(a, b, atol=1e-7)


@pytest.mark.parametrize("h", list(range(200, 1400, 37)))
def test_non_overlapping_crop_offset_equals_reference_centre_crop(h):
    # the reference crops the canvas with torchvision CenterCrop: offset round((canvas - H) / 2), half to even
    t = 256
    nr, _ = non_overlapping_grid((h, h), t)
    tiles = np.zeros((nr * nr, t, t), np.int32)
    for k in range(nr * nr):
        r, c = divmod(k, nr)
        tiles[k] = (r * t + np.arange(t))[:, None] * 0 + (r * t + np.arange(t))[:, None]  # canvas row index
    out = stitch_non_overlapping(tiles, (h, h), t)
    assert out[0, 0] == int(round((nr * t - h) / 2.0))


@pytest.mark.parametrize(("h", "w"), [(40, 70), (16, 16), (5, 33), (63, 17)])
def test_non_overlapping_class_map_equals_direct_argmax(h, w):
    model = Pointwise(seed=h + w)
    img = image(h, w, seed=h)
    cls = non_overlapping_class_map(model, img, context_size=32, batch_size=5)
    assert cls.shape == (h, w) and cls.dtype == np.uint8
    direct = model.direct(img / 255.0)
    top2 = np.sort(direct, axis=0)[-2:]
    sure = (top2[1] - top2[0]) > 1e-5
    assert np.array_equal(cls[sure], direct.argmax(axis=0)[sure])
    pad = whole_image_padding((h, w), 16)
    assert pad.top >= 8 and pad.left >= 8


def test_tile_index_sorts_numerically():
    names = [f"stem_{k:03d}" for k in (1000, 999, 2, 10)]
    assert sorted(names, key=tile_index) == ["stem_002", "stem_010", "stem_999", "stem_1000"]
    assert sorted(names) != sorted(names, key=tile_index)  # the reference's lexicographic order is wrong
    with pytest.raises(ValueError):
        tile_index("no_index_here")


def test_tta_rotation_direction_and_inverse():
    from ssl4sar.inference import _forward_transform, _inverse_transform

    a = np.array([[1, 2], [3, 4]])
    assert np.array_equal(_forward_transform(a, 1, False), [[3, 1], [4, 2]])  # 90° clockwise
    x = np.arange(24, dtype=np.float32).reshape(1, 4, 6)
    for k in range(4):
        for flip in (False, True):
            y = _forward_transform(x[0], k, flip)[None]
            assert np.array_equal(_inverse_transform(y, k, flip), x)


def test_predict_probabilities_ensemble_mean_std_and_tta():
    img = image(30, 45, seed=3)
    m1, m2 = Pointwise(seed=1), Pointwise(seed=2)
    kw = {"context_size": 16, "stride": 8}
    single = predict_probabilities(m1, img, **kw)
    assert isinstance(single, EnsemblePrediction) and single.n_maps == 1
    np.testing.assert_allclose(single.mean, m1.direct(img / 255.0), atol=2e-6)
    assert np.all(single.std == 0)
    # pointwise models are rotation equivariant: all TTA maps agree after rotating back
    tta = predict_probabilities([m1], img, rotations=(0, 1, 2, 3), flips=True, **kw)
    assert tta.n_maps == 8
    np.testing.assert_allclose(tta.mean, single.mean, atol=3e-6)
    assert tta.std.max() < 1e-5
    ens = predict_probabilities([m1, m2], img, rotations=(0, 1), **kw)
    p1, p2 = m1.direct(img / 255.0), m2.direct(img / 255.0)
    np.testing.assert_allclose(ens.mean, (p1 + p2) / 2, atol=3e-6)
    np.testing.assert_allclose(ens.std, np.abs(p1 - p2) / 2, atol=3e-6)
    assert np.array_equal(ens.classes, ens.mean.argmax(axis=0))
    with pytest.raises(ValueError):
        predict_probabilities([], img, **kw)


class Conv3x3(torch.nn.Module):
    """A random 3 × 3 convolution: not rotation-equivariant, so every TTA view gives other probabilities."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x) * 4


@pytest.mark.parametrize("rotations, flips", [((0, 1, 2, 3), False), ((2, 0), True), ((0, 1, 0), False)])
def test_with_and_without_tta_from_shared_passes_equal_two_separate_predictions(rotations, flips):
    img = image(37, 52, seed=5)
    kw = {"context_size": 16, "stride": 8, "batch_size": 4}
    members = [Conv3x3(1), Conv3x3(2)]
    def calls() -> list[int]:  # forward passes (batches of windows) since the last look, per member
        counts = [m.calls for m in members]
        for m in members:
            m.calls = 0
        return counts

    without = predict_probabilities(members, img, **kw)
    without_calls = calls()
    with_tta = predict_probabilities(members, img, rotations=rotations, flips=flips, **kw)
    with_tta_calls = calls()
    shared = predict_with_and_without_tta(members, img, rotations=rotations, flips=flips, **kw)
    for got, expected in zip(shared, (without, with_tta)):
        assert got.n_maps == expected.n_maps
        for field in ("mean", "std", "classes"):
            np.testing.assert_array_equal(getattr(got, field), getattr(expected, field))
    assert without.n_maps == 2 and with_tta.n_maps == 2 * len(rotations) * (2 if flips else 1)
    assert not np.array_equal(without.classes, with_tta.classes)  # the views differ: the test can tell them apart
    # the pair costs the passes of the TTA prediction alone: the untransformed view's are not repeated
    assert calls() == with_tta_calls and min(without_calls) > 0


def test_with_and_without_tta_needs_the_untransformed_view():
    with pytest.raises(ValueError, match="lack the untransformed view 0"):
        predict_with_and_without_tta([Conv3x3(0)], image(20, 20), rotations=(1, 2), context_size=16, stride=8)


@pytest.mark.parametrize("k", [1, 2, 4, 5])
def test_class_map_is_the_first_largest_score(k):
    rng = np.random.default_rng(k)
    scores = rng.integers(0, 4, (k, 37, 41)).astype(np.float32) / 4  # many ties: the first index must win
    np.testing.assert_array_equal(class_map(scores), scores.argmax(axis=0))
    assert class_map(scores).dtype == np.uint8
    # a slice whose rows are not contiguous
    np.testing.assert_array_equal(class_map(scores[:, 3:30, 5:]), scores[:, 3:30, 5:].argmax(axis=0))


def _random_maps(seed: int, n: int, shape: tuple[int, int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random(shape, dtype=np.float32) for _ in range(n)]


def _moments_of(maps: list[np.ndarray]) -> RunningMoments:
    moments = RunningMoments()
    for m in maps:
        moments.add(m)
    return moments


def test_running_moments_std_is_written_in_place_with_the_same_values():
    maps = _random_maps(7, 3, (4, 120, 150))
    moments = _moments_of(maps)
    # the population formula on the Welford sums, as the library always computed it
    expected = np.sqrt(np.maximum(moments._m2 / moments.n, 0.0)).astype(np.float32)
    np.testing.assert_array_equal(moments.std(), expected)
    np.testing.assert_allclose(expected, np.std(np.stack(maps), axis=0), atol=1e-6)
    # into a caller's array (a slice of the scene's memory map in predict): no temporary of the map's size
    out = np.full((4, 130, 150), -1.0, dtype=np.float32)
    _, peak = traced_peak(lambda: moments.std(out=out[:, 5:125]))
    np.testing.assert_array_equal(out[:, 5:125], expected)
    assert np.all(out[:, :5] == -1.0) and np.all(out[:, 125:] == -1.0)
    assert peak < expected.nbytes / 4, f"std(out=) allocated {peak} B for a {expected.nbytes} B map"
    one = RunningMoments()
    one.add(maps[0])
    np.testing.assert_array_equal(one.std(), np.zeros_like(maps[0]))


def test_running_moments_add_matches_welford_without_map_sized_temporaries():
    maps = _random_maps(8, 4, (4, 301, 157))  # rows not a multiple of any block
    mean, m2 = maps[0].copy(), np.zeros_like(maps[0])
    for n, prob in enumerate(maps[1:], start=2):  # the textbook float32 update, whole arrays at a time
        delta = prob - mean
        mean += delta / n
        m2 += delta * (prob - mean)
    moments = RunningMoments()
    moments.add(maps[0])
    peaks = [traced_peak(lambda p=prob: moments.add(p))[1] for prob in maps[1:]]
    np.testing.assert_array_equal(moments.mean, mean)
    np.testing.assert_array_equal(moments._m2, m2)
    assert max(peaks) < maps[0].nbytes / 4, f"add allocated {max(peaks)} B for a {maps[0].nbytes} B map"


def test_running_moments_accumulate_in_the_callers_buffers():
    maps = _random_maps(9, 3, (4, 400, 150))
    free = _moments_of(maps)
    mean_out = np.full((4, 420, 150), -1.0, dtype=np.float32)
    std_out = np.full((4, 420, 150), -1.0, dtype=np.float32)
    held = RunningMoments(mean=mean_out[:, 10:410], m2=std_out[:, 10:410])
    def accumulate() -> None:
        for m in maps:
            held.add(m)
        held.std(out=std_out[:, 10:410])  # finishes in place over the sums

    _, peak = traced_peak(accumulate)
    assert peak < maps[0].nbytes / 4, f"{peak} B allocated for {maps[0].nbytes} B maps"
    np.testing.assert_array_equal(mean_out[:, 10:410], free.mean)
    np.testing.assert_array_equal(std_out[:, 10:410], free.std())
    assert np.all(mean_out[:, :10] == -1) and np.all(std_out[:, 410:] == -1)
    with pytest.raises(RuntimeError, match="no more maps"):
        held.add(maps[0])
    with pytest.raises(RuntimeError, match="already"):
        held.std()
    with pytest.raises(ValueError, match="both"):
        RunningMoments(mean=mean_out)
    with pytest.raises(RuntimeError, match="no map"):
        RunningMoments().std()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sliding_window_on_cuda_matches_cpu():
    model = Pointwise(seed=11)
    img = image(90, 70, seed=2)
    cpu = sliding_window_probabilities(model, img, context_size=32, stride=8)
    model_gpu = Pointwise(seed=11).cuda()
    on_gpu = sliding_window_probabilities(model_gpu, img, context_size=32, stride=8)
    cpu_canvas = sliding_window_probabilities(model_gpu, img, context_size=32, stride=8, canvas_device="cpu")
    np.testing.assert_allclose(on_gpu, cpu, atol=1e-5)
    np.testing.assert_allclose(cpu_canvas, cpu, atol=1e-5)
    cls = non_overlapping_class_map(model_gpu, img, context_size=32)
    assert np.array_equal(cls, non_overlapping_class_map(model, img, context_size=32))
    flags: list[bool] = []

    def probe(x: torch.Tensor) -> torch.Tensor:
        flags.append(torch.backends.cudnn.benchmark)
        return model_gpu(x)

    before = torch.backends.cudnn.benchmark
    sliding_window_probabilities(probe, img, context_size=32, stride=8)
    assert flags and all(flags)                       # cuDNN autotuning during the forward passes
    assert torch.backends.cudnn.benchmark == before   # and the process-wide flag restored afterwards


def test_inference_runs_its_forward_passes_under_cudnn_autotuning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both inference loops enter :func:`ssl4sar.models.fast.cudnn_autotuning` for the model's device, around every
    forward pass (on CUDA it switches cuDNN's autotuning on; here, on the CPU, the wiring is what is checked)."""
    import contextlib

    import ssl4sar.inference as inference

    entered: list[tuple[torch.device, bool]] = []
    inside = {"now": False, "calls_outside": 0}

    @contextlib.contextmanager
    def recording(device: torch.device, enabled: bool = True):
        entered.append((device, enabled))
        inside["now"] = True
        try:
            yield
        finally:
            inside["now"] = False

    class Probe(Pointwise):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            inside["calls_outside"] += not inside["now"]
            return super().forward(x)

    monkeypatch.setattr(inference, "cudnn_autotuning", recording)
    img = image(60, 50, seed=4)
    sliding_window_probabilities(Probe(), img, context_size=32, stride=8, workers=2)
    non_overlapping_class_map(Probe(), img, context_size=32)
    assert entered == [(torch.device("cpu"), True)] * 2
    assert inside["calls_outside"] == 0


def test_centre_only_equals_the_full_decoder() -> None:
    """Sliding windows with the model's centre-only decoder give the probabilities of the full forward pass."""
    from ssl4sar.config import load_preset
    from ssl4sar.models import Tyrion

    torch.manual_seed(0)
    model = Tyrion.from_config(load_preset("smoke")["model"]).eval()
    image = np.random.default_rng(0).integers(0, 256, (90, 77), dtype=np.uint8)
    kw = {"context_size": 64, "stride": 16, "batch_size": 3}
    fast = sliding_window_probabilities(model, image, centre_only=True, **kw)
    full = sliding_window_probabilities(model, image, centre_only=False, **kw)
    np.testing.assert_allclose(fast, full, rtol=0, atol=1e-6)
    # a model without centre_logits goes through forward + crop either way
    plain = sliding_window_probabilities(lambda x: model(x), image, centre_only=True, **kw)
    np.testing.assert_allclose(plain, full, rtol=0, atol=1e-6)


def test_sliding_window_workers_give_the_same_probabilities() -> None:
    """``workers`` single-threaded forward passes in parallel (the CPU default: two) give bit-identical maps to one
    worker with one thread, keep the order of the windows, restore torch's thread count and pass errors on."""
    from ssl4sar.config import load_preset
    from ssl4sar.models import Tyrion

    torch.manual_seed(1)
    model = Tyrion.from_config(load_preset("smoke")["model"]).eval().set_fused_attention(True)
    img = np.random.default_rng(3).integers(0, 256, (150, 130), dtype=np.uint8)
    kw = {"context_size": 64, "stride": 16, "batch_size": 3}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = sliding_window_probabilities(model, img, workers=1, **kw)
        one_bf16 = sliding_window_probabilities(model, img, workers=1, amp_dtype=torch.bfloat16, **kw)
    finally:
        torch.set_num_threads(threads)
    for workers in (2, 3):
        assert np.array_equal(sliding_window_probabilities(model, img, workers=workers, **kw), one)
        assert torch.get_num_threads() == threads
    assert np.array_equal(sliding_window_probabilities(model, img, workers=2, amp_dtype=torch.bfloat16, **kw),
                          one_bf16)
    with pytest.raises(ValueError, match="workers"):
        sliding_window_probabilities(model, img, workers=0, **kw)

    def failing(x: torch.Tensor) -> torch.Tensor:
        if float(x.mean()) > 0.0:
            raise RuntimeError("simulated failure in a worker")
        return model(x)

    with pytest.raises(RuntimeError, match="simulated failure"):
        sliding_window_probabilities(failing, img, workers=2, **kw)
    assert torch.get_num_threads() == threads


def test_default_inference_workers() -> None:
    from ssl4sar.inference import default_inference_workers

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert default_inference_workers("cpu") == 1
        torch.set_num_threads(2)
        assert default_inference_workers("cpu") == 2
        assert default_inference_workers("cuda") == 1
    finally:
        torch.set_num_threads(threads)


def test_a_failed_stitching_step_leaves_torch_its_threads() -> None:
    """The forward passes run on two single-threaded workers; when the stitching that consumes them fails, torch's
    thread count must come back at once, not when the exception is garbage-collected (Jupyter keeps the last one)."""
    calls = {"n": 0}

    def changes_its_classes(x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1  # the second batch has 3 classes instead of 4: the canvas cannot take it
        return torch.zeros(x.shape[0], 4 if calls["n"] == 1 else 3, *x.shape[-2:])

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        held = None
        try:
            sliding_window_probabilities(changes_its_classes, image(40, 50), context_size=16, stride=8,
                                         batch_size=2, workers=2)
        except RuntimeError as exc:
            held = exc  # kept alive, as an interactive session keeps it
        assert held is not None
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.int64, np.bool_])
def test_integer_images_other_than_8_bit_are_refused(dtype) -> None:
    """Only uint8 is scaled (÷ 255); a uint16 or int64 image of 0–255 values would enter the network unscaled."""
    with pytest.raises(ValueError, match=f"uint8 .* or float in \\[0, 1\\].*{np.dtype(dtype).name}"):
        sliding_window_probabilities(Pointwise(), image(20, 20).astype(dtype), context_size=16, stride=8)


def test_a_float_image_with_nan_is_refused() -> None:
    """One NaN pixel spreads through attention and group norms to every window that holds it, and the class map
    calls that area 'no data': refuse it, saying how many pixels and where the first is."""
    img = image(20, 30).astype(np.float32) / 255.0
    img[5, 7] = np.nan
    img[9, 2] = np.inf
    with pytest.raises(ValueError, match=r"2 non-finite pixel\(s\); the first at row 5, column 7"):
        sliding_window_probabilities(Pointwise(), img, context_size=16, stride=8)
