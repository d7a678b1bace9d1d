"""Fast paths of TYRION (ssl4sar.models.fast): fused SDPA window attention, channels-last, autocast helpers,
torch.compile with fallback.

The fused attention is checked against timm's default attention on two small networks whose stages cover every
attention case: shifted windows (stages with a token grid larger than the window), unshifted windows, and the
global window of the last stages (window := grid). The weights are randomised around their initial values with
non-zero residual post-norms, so that the attention branch actually contributes (zero-initialised post-norms
would hide it). A reference-marked test runs the fused path on the official network's logits fixture.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fake_gpu import pretend_cuda
from timm.models.swin_transformer_v2 import WindowAttention

from ssl4sar.models import Tyrion
from ssl4sar.models.fast import (
    FusedWindowAttention,
    amp_dtype_for,
    autocast,
    cache_attention_bias,
    compile_failed,
    cpu_has_native_bf16,
    cuda_has_native_bf16,
    cudnn_autotuning,
    disable_fused_attention,
    enable_fused_attention,
    for_inference,
    fused_attention,
    fused_attention_enabled,
    is_compiled,
    lightning_precision,
    maybe_compile,
    optimize_for_device,
    resolve_device,
    set_channels_last,
)

torch.set_num_threads(2)

# grids 16, 8, 4, 2 tokens with window 4: shifted windows in stages 0-1, global window in stages 2-3
SMOKE_LIKE = {
    "img_size": 64,
    "patch_size": 4,
    "embed_dim": 32,
    "depths": [2, 2, 2, 2],
    "num_heads": [1, 2, 4, 8],
    "window_size": 4,
    "mlp_ratio": 2.0,
    "decoder_dropout": 0.0,
    "zero_init_res_post_norm": False,
}
# grids 24, 12, 6 with window 6 and two heads in stage 0: 16 shifted windows per image in stage 0
SMALL = {
    "img_size": 96,
    "patch_size": 4,
    "embed_dim": 32,
    "depths": [2, 2, 2],
    "num_heads": [2, 2, 4],
    "window_size": 6,
    "mlp_ratio": 2.0,
    "decoder_dropout": 0.0,
    "zero_init_res_post_norm": False,
}
# grids 8, 4 with window 4: windowed + shifted in stage 0, global in stage 1 (the cheap model of most tests)
MINI = {
    "img_size": 32,
    "patch_size": 4,
    "embed_dim": 32,
    "depths": [2, 2],
    "num_heads": [1, 2],
    "window_size": 4,
    "mlp_ratio": 1.0,
    "decoder_dropout": 0.0,
    "zero_init_res_post_norm": False,
}
TINY = {
    "img_size": 32,
    "patch_size": 4,
    "embed_dim": 32,
    "depths": [1, 1],
    "num_heads": [1, 2],
    "window_size": 4,
    "mlp_ratio": 1.0,
    "decoder_dropout": 0.0,
}


def _random_model(cfg: dict, seed: int = 0, dtype: torch.dtype = torch.float64) -> Tyrion:
    """A model with every parameter perturbed (so that biases, logit scales and cpb weights all matter)."""
    torch.manual_seed(seed)
    model = Tyrion.from_config(cfg).to(dtype)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.5 if name.endswith("logit_scale") else 0.05
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=torch.float64).to(dtype))
    return model


def _attention_cases(model: Tyrion) -> set[str]:
    cases = set()
    for stage in model.encoder.layers:
        for blk in stage.blocks:
            grid = blk.input_resolution[0]
            if any(blk.shift_size):
                cases.add("shifted")
            elif blk.window_size[0] < grid:
                cases.add("windowed")
            else:
                cases.add("global")
    return cases


_CACHE: dict[str, Tyrion] = {}


def _model64(name: str) -> Tyrion:
    """The perturbed float64 model of config ``name`` in eval mode, built once per session (callers copy it)."""
    if name not in _CACHE:
        _CACHE[name] = _random_model({"smoke-like": SMOKE_LIKE, "small": SMALL, "mini": MINI}[name]).eval()
    return _CACHE[name]


def _encoder(model: Tyrion, x: torch.Tensor) -> list[torch.Tensor]:
    """The skip features of every stage: where attention acts (the decoder is plain convolutions)."""
    return model.encode(model.embed(x))


@pytest.mark.parametrize("name", ["smoke-like", "small"])
def test_fused_equals_default(name: str) -> None:
    ref = _model64(name)
    size = ref.img_size
    assert _attention_cases(ref) == {"shifted", "windowed", "global"}
    fused = copy.deepcopy(ref).set_fused_attention(True)
    n_fused = sum(isinstance(m, FusedWindowAttention) for m in fused.modules())
    assert n_fused == sum(ref.config["depths"]) and fused.fused_attention and not ref.fused_attention
    # float64, every stage, two images (the shifted-window mask broadcasts over images)
    x = torch.rand(2, 1, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        skips_ref, skips_fused = _encoder(ref, x), _encoder(fused, x)
    for i, (a, b) in enumerate(zip(skips_ref, skips_fused)):
        scale = float(a.abs().max())
        assert scale > 0.1
        assert float((a - b).abs().max()) <= 1e-11 * scale, f"stage {i}"
    # float32, the whole network (logits)
    with torch.no_grad():
        ref32, fused32 = copy.deepcopy(ref).float(), fused.float()
        a32, b32 = ref32(x[:1].float()), fused32(x[:1].float())
    assert float((a32 - b32).abs().max()) <= 2e-5 * float(a32.abs().max())


def test_fused_gradients_equal_default_float64() -> None:
    ref = copy.deepcopy(_model64("mini")).train()
    assert _attention_cases(ref) == {"shifted", "windowed", "global"}
    fused = copy.deepcopy(ref).set_fused_attention(True)
    x = torch.rand(2, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    gen = torch.Generator().manual_seed(8)
    weights = [torch.randn(s.shape, dtype=torch.float64, generator=gen) for s in _encoder(ref, x)]
    for model in (ref, fused):
        sum((s * w).sum() for s, w in zip(_encoder(model, x), weights)).backward()
    for (name, p), q in zip(ref.encoder.named_parameters(), fused.encoder.parameters()):
        assert p.grad is not None and q.grad is not None, name
        g = float(p.grad.abs().max())
        assert g > 0, f"{name}: zero gradient"
        assert float((p.grad - q.grad).abs().max()) <= 1e-9 * g + 1e-15, name
        if "cpb_mlp" in name or "logit_scale" in name:
            assert float(q.grad.abs().max()) > 0, f"{name}: no gradient through the fused bias / scale"


def _sdpa_argument_strides(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[str, tuple[int, ...], tuple[int, ...]]]]:
    """Record (name, shape, strides) of q, k, v and attn_mask of every ``scaled_dot_product_attention`` call."""
    calls: list[list[tuple[str, tuple[int, ...], tuple[int, ...]]]] = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
            **kwargs: Any) -> torch.Tensor:
        args = {"q": q, "k": k, "v": v, "attn_mask": attn_mask}
        calls.append([(n, tuple(t.shape), tuple(t.stride())) for n, t in args.items() if t is not None])
        return real(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    return calls


def test_fused_attention_arguments_have_a_contiguous_last_dimension(monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA's fused attention kernels (memory-efficient, cuDNN) accept q, k, v and a float mask only when their last
    dimension has stride 1; anything else PyTorch silently runs on its math kernel, in float32 with every window's
    attention matrix materialised (``check_last_dim_stride_equals_1_dense`` in PyTorch's sdp_utils). The CPU's
    flash kernel accepts either layout, so the arguments themselves are checked: every block (windowed, shifted,
    global), with gradients (bias recomputed), under bf16 autocast, and without gradients (bias cached, reused)."""
    model = copy.deepcopy(_model64("small")).float().set_fused_attention(True)
    cache_attention_bias(model)
    assert _attention_cases(model) == {"shifted", "windowed", "global"}
    assert min(s.blocks[0].attn.num_heads for s in model.encoder.layers) > 1  # one head hides a permuted bias
    calls = _sdpa_argument_strides(monkeypatch)
    x = torch.rand(2, 1, 96, 96, generator=torch.Generator().manual_seed(3))
    _encoder(model.train(), x)[-1].sum().backward()
    with autocast("cpu", torch.bfloat16):
        _encoder(model, x)
    with torch.no_grad():
        _encoder(model.eval(), x)
        _encoder(model, x)
    blocks = sum(len(stage.blocks) for stage in model.encoder.layers)
    assert len(calls) == 4 * blocks and all(len(call) == 4 for call in calls)  # every call has a mask
    strided = [(i % blocks, name, shape, strides) for i, call in enumerate(calls)
               for name, shape, strides in call if strides[-1] != 1]
    assert not strided, f"(block, argument, shape, strides) with a strided last dimension: {strided}"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fast_path_needs_no_math_attention() -> None:
    """On a GPU the fast path trains and infers with the fused kernels alone: with the math kernel switched off,
    an attention call that the fused kernels refuse raises instead of falling back."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = copy.deepcopy(_model64("small")).float().set_fused_attention(True).cuda()
    cache_attention_bias(model)  # inference reuses the bias: its layout is checked too
    x = torch.rand(2, 1, 96, 96, device="cuda")
    fused_only = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    with sdpa_kernel(fused_only), autocast("cuda", torch.bfloat16):
        model.train()(x).float().square().mean().backward()
        with torch.no_grad():
            model.eval()(x)
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)


def test_attention_masks_are_really_used() -> None:
    """Guard against a fused path that ignores the shifted-window mask or the position bias."""
    fused = copy.deepcopy(_model64("mini")).set_fused_attention(True)
    x = torch.rand(1, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base = _encoder(fused, x)[0]
        blk = fused.encoder.layers[0].blocks[1]
        assert blk.attn_mask is not None and float(blk.attn_mask.min()) == -100.0
        saved = blk.attn_mask.clone()
        blk.attn_mask.zero_()
        changed = _encoder(fused, x)[0]
        blk.attn_mask.copy_(saved)
        restored = _encoder(fused, x)[0]
    assert float((changed - base).abs().max()) > 1e-6
    assert torch.equal(restored, base)


def test_state_dict_and_switching() -> None:
    model = _random_model(TINY)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    assert enable_fused_attention(model) == 2
    assert enable_fused_attention(model) == 0  # already fused
    assert fused_attention_enabled(model)
    sd2 = model.state_dict()
    assert list(sd2) == list(sd) and all(torch.equal(sd[k], sd2[k]) for k in sd)
    with fused_attention(model, enabled=False):
        assert not fused_attention_enabled(model)
        assert all(type(m) is WindowAttention for m in model.modules() if isinstance(m, WindowAttention))
    assert fused_attention_enabled(model)
    assert disable_fused_attention(model) == 2 and not model.fused_attention
    flagged = Tyrion(**TINY, fused_attention=True)
    assert flagged.fused_attention
    assert "fused_attention" not in flagged.config  # not part of the saved configuration
    flagged.load_state_dict(sd)  # strict: same keys


def test_bias_cache_used_and_invalidated() -> None:
    ref = copy.deepcopy(_model64("mini"))
    model = copy.deepcopy(ref).set_fused_attention(True)
    cache_attention_bias(model)
    x = torch.rand(1, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    attn = model.encoder.layers[0].blocks[1].attn
    with torch.no_grad():
        first = _encoder(model, x)[-1]
        cached = attn.__dict__["_fused_bias_cache"][1]
        assert cached.shape == (1, 4 * 1, 16, 16)  # 4 windows of the 8x8 token grid, 1 head, N = 16
        assert torch.equal(_encoder(model, x)[-1], first)
        assert attn.__dict__["_fused_bias_cache"][1] is cached  # reused
        # an in-place update of the cpb MLP (optimiser step, load_state_dict) invalidates it
        for m in (model, ref):
            m.encoder.layers[0].blocks[1].attn.cpb_mlp[0].weight.mul_(1.5)
        out, expected = _encoder(model, x)[-1], _encoder(ref, x)[-1]
        assert attn.__dict__["_fused_bias_cache"][1] is not cached
    assert float((out - first).abs().max()) > 1e-6
    assert float((out - expected).abs().max()) <= 1e-11 * float(expected.abs().max())
    # moving the model (device or dtype) drops the cache: it would otherwise keep the old tensors' memory
    model.float()
    assert "_fused_bias_cache" not in attn.__dict__
    model.double()
    # with gradients enabled the bias is recomputed (it must carry the graph of the cpb MLP)
    out = _encoder(model, x)[-1]
    out.sum().backward()
    assert attn.cpb_mlp[0].weight.grad is not None and float(attn.cpb_mlp[0].weight.grad.abs().max()) > 0


def _fused_sgd_step(model: Tyrion, seed: int) -> None:
    """One fused-SGD step on the cpb MLPs: torch's fused optimisers change the weights without moving their version
    counters (nor does an update through ``.data``, as some EMA code does)."""
    cpb = [p for n, p in model.named_parameters() if "cpb_mlp" in n]
    gen = torch.Generator().manual_seed(seed)
    for p in cpb:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
    versions = [p._version for p in cpb]
    torch.optim.SGD(cpb, lr=1.0, fused=True).step()
    assert [p._version for p in cpb] == versions  # what the cache key cannot see


def _fresh_output(model: Tyrion, x: torch.Tensor) -> torch.Tensor:
    for m in model.modules():
        if isinstance(m, FusedWindowAttention):
            m.clear_cache()
    return _encoder(model, x)[-1]


def test_bias_cache_never_outlives_a_weight_update_it_cannot_see() -> None:
    """A fused model validated under ``no_grad`` after a fused optimiser step reused the bias of the weights before
    the step: silently wrong outputs (0.3 apart on a tiny model). Fused attention now caches nothing unless asked
    (:func:`cache_attention_bias`: the library's inference form, and its training modules, whose train()/eval()
    switches around every optimiser step drop the cache)."""
    model = copy.deepcopy(_model64("mini")).float().set_fused_attention(True).eval()
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        _encoder(model, x)
    _fused_sgd_step(model, 0)
    with torch.no_grad():
        after = _encoder(model, x)[-1]
        assert torch.equal(after, _fresh_output(model, x))
    # asked to cache: kept between calls without gradients, dropped by the train() / eval() around a step
    assert cache_attention_bias(model) == sum(model.config["depths"])
    with torch.no_grad():
        first = _encoder(model, x)[-1]
        assert torch.equal(_encoder(model, x)[-1], first)
    model.train()
    _fused_sgd_step(model, 1)
    model.eval()
    with torch.no_grad():
        out = _encoder(model, x)[-1]
        assert float((out - first).abs().max()) > 1e-4
        assert torch.equal(out, _fresh_output(model, x))


def test_optimize_for_device_refuses_before_changing_the_model() -> None:
    """A refused call (polyphase upsampling asked of a module that has none) left the module fused already."""
    encoder = Tyrion.from_config(TINY).encoder  # window attention, but no decoder to make polyphase
    with pytest.raises(ValueError, match="polyphase upsampling needs a Tyrion model"):
        optimize_for_device(encoder, "cpu", polyphase=True)
    assert not fused_attention_enabled(encoder)


def test_training_modules_cache_the_validation_bias() -> None:
    from ssl4sar.finetune import SegmentationModule
    from ssl4sar.pretrain.optsimmim import OptSimMIM

    for module in (SegmentationModule(TINY), OptSimMIM(TINY, token_size=4)):
        attn = [m for m in module.modules() if isinstance(m, FusedWindowAttention)]
        assert attn and all(m.bias_cache for m in attn)


def test_inference_form_caches_the_attention_bias() -> None:
    model = for_inference(copy.deepcopy(_model64("mini")).float())
    attn = model.encoder.layers[0].blocks[1].attn
    assert attn.bias_cache
    with torch.no_grad():
        model(torch.rand(1, 1, 32, 32))
    assert "_fused_bias_cache" in attn.__dict__


def test_fused_attention_on_weights_made_in_inference_mode() -> None:
    """``@torch.inference_mode()`` around loading and predicting makes inference tensors, which have no version
    counter to key the bias cache on: the fused path must run (without the cache) and give the timm path's
    numbers, also after the weights change in place inside inference mode."""
    with torch.inference_mode():
        ref = _random_model(TINY)
        model = copy.deepcopy(ref).set_fused_attention(True)
        x = torch.rand(1, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        assert torch.allclose(model(x), ref(x), rtol=0, atol=1e-10)
        for m in (model, ref):  # e.g. load_state_dict inside inference mode: no version counter moves
            m.encoder.layers[0].blocks[0].attn.cpb_mlp[0].weight.mul_(1.5)
        assert torch.allclose(model(x), ref(x), rtol=0, atol=1e-10)


def test_channels_last_output_equal() -> None:
    model = copy.deepcopy(_model64("mini")).float()
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a = model(x)
        set_channels_last(model, True)
        assert model.head.weight.is_contiguous(memory_format=torch.channels_last)
        assert model.decoder[1].block.conv1.weight.is_contiguous(memory_format=torch.channels_last)
        assert not model.decoder[1].block.conv1.weight.is_contiguous()
        b = model(x.contiguous(memory_format=torch.channels_last))
        set_channels_last(model, False)
        assert model.decoder[1].block.conv1.weight.is_contiguous()
    assert float((a - b).abs().max()) <= 1e-5 * float(a.abs().max())


def test_optimize_for_device_cpu() -> None:
    model = _random_model(TINY, dtype=torch.float32)
    out = optimize_for_device(model, "cpu")
    assert out is model and model.fused_attention
    assert model.decoder[1].block.conv1.weight.is_contiguous()  # channels-last is off on CPU by default
    optimize_for_device(model, "cpu", fused=False, channels_last=True)
    assert model.decoder[1].block.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.fused_attention  # fused=False does not switch an enabled path off
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.parametrize("device", ["foo", "gpu", "cuda:x", "", "mps", "meta"])
def test_resolve_device_refuses_what_is_no_device_of_the_library(device: str) -> None:
    # `--device foo` ended in torch's RuntimeError traceback listing its twenty device types; "meta" or "mps" went
    # on to fail later, at the first tensor or kernel the library does not have for them
    from ssl4sar.errors import SettingError

    with pytest.raises(SettingError, match=rf"device {device!r}: expected auto, cpu, cuda or cuda:N"):
        resolve_device(device)


def test_resolve_device_names_a_gpu_that_is_not_there(monkeypatch: pytest.MonkeyPatch) -> None:
    # `cuda:2` on a two-GPU machine: a clear error naming the GPUs torch sees, not an "invalid device ordinal"
    # from the first tensor moved there
    pretend_cuda(monkeypatch, (8, 0), "NVIDIA A100-SXM4-40GB", count=2)
    assert resolve_device("cuda:1") == torch.device("cuda:1") and resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(ValueError, match=r"'cuda:2'.*2 CUDA device\(s\).*cuda:0 to cuda:1"):
        resolve_device("cuda:2")
    with pytest.raises(ValueError, match="cuda:7"):
        resolve_device(torch.device("cuda", 7))
    # evaluate / predict name their device as text, with the same checks
    from ssl4sar.inference_settings import resolve_device as resolve_device_name

    assert resolve_device_name("cuda:1") == "cuda:1" and resolve_device_name("auto") == "cuda"
    with pytest.raises(ValueError, match=r"'cuda:2'.*2 CUDA device"):
        resolve_device_name("cuda:2")


@pytest.mark.parametrize(
    ("capability", "name", "native"),
    [((7, 5), "Tesla T4", False), ((7, 0), "Tesla V100-SXM2-16GB", False), ((6, 0), "Tesla P100-PCIE-16GB", False),
     ((8, 0), "NVIDIA A100-SXM4-40GB", True), ((8, 9), "NVIDIA L4", True), ((9, 0), "NVIDIA H100 80GB HBM3", True)],
)
def test_auto_precision_on_a_gpu_is_bf16_only_where_it_is_native(
    monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], name: str, native: bool
) -> None:
    # torch.cuda.is_bf16_supported() answers True on a T4 (emulated bf16: no tensor cores, no cuDNN bf16
    # convolutions, no fused bf16 attention), so it cannot decide; the compute capability does (>= 8.0)
    pretend_cuda(monkeypatch, capability, name)
    assert torch.cuda.is_bf16_supported()  # what torch answers on every one of these GPUs
    assert cuda_has_native_bf16() is native and cuda_has_native_bf16("cuda:0") is native
    assert amp_dtype_for("cuda", "auto") is (torch.bfloat16 if native else None)
    assert lightning_precision("cuda", "auto") == ("bf16-mixed" if native else "32-true")
    # an explicit choice is the user's
    assert amp_dtype_for("cuda", "bf16") is torch.bfloat16 and amp_dtype_for("cuda", "fp32") is None


def test_auto_precision_on_rocm_is_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    pretend_cuda(monkeypatch, (9, 0), "AMD Instinct MI250X")
    monkeypatch.setattr(torch.version, "hip", "6.2")
    assert cuda_has_native_bf16() and amp_dtype_for("cuda", "auto") is torch.bfloat16


def test_amp_helpers() -> None:
    assert amp_dtype_for("cpu", "fp32") is None and amp_dtype_for("cpu", "32-true") is None
    assert amp_dtype_for("cpu", "bf16") is torch.bfloat16
    assert amp_dtype_for("cpu", "auto") is (torch.bfloat16 if cpu_has_native_bf16() else None)
    assert (
        lightning_precision("cpu", "bf16") == "bf16-mixed" and lightning_precision("cpu", "fp32") == "32-true"
    )
    with pytest.raises(ValueError, match="precision"):
        amp_dtype_for("cpu", "fp8")
    x = torch.rand(4, 4)
    with autocast("cpu", torch.bfloat16):
        assert (x @ x).dtype == torch.bfloat16
    with autocast("cpu", None):
        assert (x @ x).dtype == torch.float32


def test_fused_under_bf16_autocast_close_to_fp32() -> None:
    model = copy.deepcopy(_model64("mini")).float().set_fused_attention(True)
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        ref = model(x)
        with autocast("cpu", torch.bfloat16):
            low = model(x)
    assert low.dtype == torch.float32  # the 1 x 1 head runs in float32 (next test)
    assert float((low - ref).abs().max()) <= 0.05 * float(ref.abs().max())


def test_autocast_keeps_patch_embedding_and_head_in_float32() -> None:
    """Under bf16 autocast the patch embedding reads the unrounded image and the 1 x 1 head computes float32 logits
    from the decoder's features; everything between runs in bf16. Rounding the 8-bit input and the logits to bf16 is
    what flipped most near-tie pixels of the demo model (book/bench/cpu-2core-demo-accuracy-2026-12-04)."""
    model = copy.deepcopy(_model64("mini")).float().set_fused_attention(True)
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        exact_tokens = model.embed(x)
        with autocast("cpu", torch.bfloat16):
            tokens = model.embed(x)
            features = model.decode(model.encode(tokens))
            logits = model(x)
            centre = model.centre_logits(x, 16)
        head_fp32 = model.head(features.float())
    assert tokens.dtype == torch.float32 and torch.equal(tokens, exact_tokens)
    assert features.dtype == torch.bfloat16  # the encoder and decoder do run in bf16
    assert logits.dtype == torch.float32 and torch.equal(logits, head_fp32)
    assert centre.dtype == torch.float32
    torch.testing.assert_close(centre, logits[..., 8:24, 8:24], rtol=0, atol=0.05 * float(logits.abs().max()))
    # the switch: bf16 everywhere, as before
    model.fp32_embed_and_head = False
    with torch.no_grad(), autocast("cpu", torch.bfloat16):
        assert model.embed(x).dtype == torch.bfloat16 and model(x).dtype == torch.bfloat16
    # without autocast nothing changes: float64 stays float64
    model64 = _model64("mini")
    with torch.no_grad():
        assert model64(x.double()).dtype == torch.float64


def _failing_backend(gm: torch.fx.GraphModule, example_inputs: list) -> None:
    raise RuntimeError("simulated compiler failure")


def test_maybe_compile_falls_back_to_eager(caplog: pytest.LogCaptureFixture) -> None:
    torch._dynamo.reset()
    model = _random_model(TINY, dtype=torch.float32).eval()
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
    keys = list(model.state_dict())
    assert maybe_compile(model, enabled=False) is model and not is_compiled(model)
    assert maybe_compile(model, backend=_failing_backend) is model
    assert is_compiled(model) and compile_failed(model) is None
    # a bad input is the caller's fault: its error propagates and compilation stays on
    with pytest.raises(ValueError, match="expects input of shape"), torch.no_grad():
        model(torch.rand(1, 1, 16, 16))
    assert compile_failed(model) is None
    with caplog.at_level(logging.WARNING, logger="ssl4sar.models.fast"), torch.no_grad():
        out = model(x)
    assert torch.equal(out, expected)
    assert "simulated compiler failure" in (compile_failed(model) or "")
    assert not is_compiled(model)
    assert any("torch.compile" in r.getMessage() and "eagerly" in r.getMessage() for r in caplog.records)
    with torch.no_grad():
        assert torch.equal(model(x), expected)  # stays eager
    assert list(model.state_dict()) == keys
    torch._dynamo.reset()


def test_maybe_compile_also_compiles_the_centre_only_path(caplog: pytest.LogCaptureFixture) -> None:
    """Sliding-window inference decodes only each window's centre (``Tyrion.centre_logits``), not through
    ``model(x)``: a compiled model must compile that call too, and fall back from it like from the forward."""
    import threading

    from ssl4sar.inference import sliding_window_probabilities

    graphs: list[int] = []
    threads: set[int] = set()

    def counting_backend(gm: torch.fx.GraphModule, example_inputs: list) -> Any:
        graphs.append(len(example_inputs))

        def run(*args: Any) -> Any:
            threads.add(threading.get_ident())
            return gm.forward(*args)

        return run

    image = np.random.default_rng(0).integers(0, 256, (48, 40), dtype=np.uint8)
    kwargs = {"context_size": 32, "stride": 8, "batch_size": 2, "device": "cpu", "centre_only": True}
    torch._dynamo.reset()
    model = _random_model(TINY, dtype=torch.float32).eval()
    expected = sliding_window_probabilities(model, image, **kwargs)
    maybe_compile(model, backend=counting_backend)
    out = sliding_window_probabilities(model, image, **kwargs, workers=2)
    assert graphs, "the centre-only sliding window ran no compiled graph"
    # torch.compile is not thread-safe (two workers compiling at once hung): a compiled model runs in one thread
    assert threads == {threading.get_ident()}
    assert np.allclose(out, expected, atol=1e-5)
    assert list(model.state_dict()) == list(_random_model(TINY, dtype=torch.float32).state_dict())

    torch._dynamo.reset()
    maybe_compile(model, backend=_failing_backend)
    with caplog.at_level(logging.WARNING, logger="ssl4sar.models.fast"):
        out = sliding_window_probabilities(model, image, **kwargs)
    assert np.allclose(out, expected, atol=1e-5)
    assert "simulated compiler failure" in (compile_failed(model) or "")
    assert not is_compiled(model)
    assert "centre_logits" not in model.__dict__  # back to the eager method for good
    torch._dynamo.reset()


@pytest.mark.slow
def test_maybe_compile_eager_backend_runs() -> None:
    torch._dynamo.reset()
    model = _random_model(TINY, dtype=torch.float32).eval().set_fused_attention(True)
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
        maybe_compile(model, backend="eager")
        out = model(x)
    assert is_compiled(model) and compile_failed(model) is None
    assert float((out - expected).abs().max()) <= 1e-6 * float(expected.abs().max())
    torch._dynamo.reset()


@pytest.mark.reference
@pytest.mark.slow
def test_fused_reproduces_official_logits(reference_dir: Path) -> None:
    """The fused path on the official network's weight fill: float32 within the fixture's tolerance."""
    from test_reference_tyrion import _input_image, _official_state_dict

    from ssl4sar.models.convert import convert_official_tyrion

    meta = json.loads((reference_dir / "tyrion_forward.json").read_text())
    arrays = np.load(reference_dir / "tyrion_forward.npz")
    hp = meta["network_hyperparameters"]
    cfg = {
        k: hp[k]
        for k in (
            "img_size",
            "patch_size",
            "embed_dim",
            "depths",
            "num_heads",
            "window_size",
            "mlp_ratio",
            "qkv_bias",
            "num_classes",
            "drop_path_rate",
            "attn_drop_rate",
        )
    }
    cfg["proj_drop_rate"] = hp["drop_rate"]
    official = _official_state_dict(reference_dir, meta["weight_fill_rule"])
    model = Tyrion(**cfg, fused_attention=True).double().eval()
    model.load_state_dict(convert_official_tyrion(official))
    model = model.float()
    assert model.fused_attention
    image = _input_image(meta["input"])
    stored_input = arrays["input"]
    np.testing.assert_allclose(image, stored_input, rtol=0, atol=float(np.spacing(np.float32(1.0))))
    with torch.no_grad():
        logits = model(torch.from_numpy(stored_input)[None, None])[0].numpy()
    stored = arrays["logits"]
    assert logits.shape == stored.shape
    max_abs = float(meta["max_abs_logit"])
    err = float(np.abs(logits - stored).max())
    assert err <= 2e-4 * max_abs, f"fused float32 max error {err:.3e} (max_abs_logit {max_abs:.6f})"


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (16, 16)])
def test_polyphase_upsample_conv_equals_nearest_then_conv(shape: tuple[int, int]) -> None:
    from ssl4sar.models.tyrion import polyphase_upsample_conv

    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(2, 3, *shape, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.conv2d(torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"), w, b,
                                     padding=1)
    out = polyphase_upsample_conv(x, w, b)
    assert out.shape == (2, 4, 2 * shape[0], 2 * shape[1])
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    # the gradients too (the 2 x 2 kernels are sums of the 3 x 3 weights)
    grads = torch.autograd.grad((out * ref.detach()).sum(), (x, w, b))
    ref_grads = torch.autograd.grad((ref * ref.detach()).sum(), (x, w, b))
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-10)


def test_polyphase_upsampling_in_the_network_and_for_inference() -> None:
    """The switch changes no weight and no number beyond rounding: whole forward and centre-only decoding."""
    from ssl4sar.models.fast import for_inference

    model = copy.deepcopy(_model64("small"))
    keys = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 1, 96, 96, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        ref, ref_centre = model(x), model.centre_logits(x, 48)
        assert not model.polyphase_upsampling
        model.set_polyphase_upsampling(True)
        assert model.polyphase_upsampling
        torch.testing.assert_close(model(x), ref, rtol=0, atol=1e-12)
        torch.testing.assert_close(model.centre_logits(x, 48), ref_centre, rtol=0, atol=1e-12)
    assert all(torch.equal(v, keys[k]) for k, v in model.state_dict().items())
    fresh = copy.deepcopy(_model64("mini")).train()
    assert for_inference(fresh) is fresh and not fresh.training
    assert fresh.polyphase_upsampling and fresh.fused_attention
    convs = [m.weight for m in fresh.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous() for w in convs)   # on the CPU the layout stays (no gain measured there)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_for_inference_on_cuda_uses_channels_last_with_the_same_numbers() -> None:
    from ssl4sar.models.fast import for_inference

    model = copy.deepcopy(_model64("mini")).float().eval()
    x = torch.rand(2, 1, 96, 96, generator=torch.Generator().manual_seed(5))
    # full float32 convolutions and matmuls: TF32 rounding would hide a layout or polyphase error of the same size
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        old_tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            ref = model.cuda()(x.cuda())
            for_inference(model)
            got = model(x.cuda())
        finally:
            torch.backends.cuda.matmul.allow_tf32 = old_tf32
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last)
               for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[-1] > 1)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("device", "inside"), [("cuda", True), ("cuda:1", True), ("cpu", False)])
def test_cudnn_autotuning_is_on_for_cuda_only_and_restored(device: str, inside: bool) -> None:
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        with cudnn_autotuning(device):   # the flag alone: nothing runs on the device
            assert torch.backends.cudnn.benchmark is inside
        assert torch.backends.cudnn.benchmark is False
        with pytest.raises(RuntimeError), cudnn_autotuning(device):
            raise RuntimeError("a failed forward pass")
        assert torch.backends.cudnn.benchmark is False   # restored on errors too
    finally:
        torch.backends.cudnn.benchmark = old


def _graph_targets(module: torch.nn.Module, *args: torch.Tensor) -> tuple[set[str], torch.Tensor]:
    """The call targets of the graph that torch.compile's front end traces for ``module(*args)`` (run eagerly by
    the recording backend), and the output."""
    targets: set[str] = set()

    def record(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Any:
        targets.update(getattr(n.target, "__name__", str(n.target)) for n in gm.graph.nodes
                       if n.op in ("call_function", "call_method"))
        return gm.forward

    torch._dynamo.reset()
    out = torch.compile(module, backend=record)(*args)
    return targets, out


@pytest.mark.parametrize("channels_last", [False, True])
def test_compiled_upsampling_is_a_broadcast_with_the_same_numbers(channels_last: bool) -> None:
    """Under torch.compile the decoder's nearest x2 upsampling is a broadcast: inductor lowers interpolate's backward
    to an atomic scatter-add (the largest non-GEMM kernel of the compiled H200 step), a broadcast's to a reduction.
    Forward values, gradients and the memory layout are those of F.interpolate; eager keeps F.interpolate."""
    from ssl4sar.models.tyrion import Upsample, upsample_nearest_2x

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g = torch.Generator().manual_seed(7)
    # integer-valued inputs and upstream gradients: every sum of four is exact, whatever its order
    x = torch.randint(-8, 8, (2, 3, 5, 6), generator=g).float().to(memory_format=fmt).requires_grad_()
    up = torch.randint(-8, 8, (2, 3, 10, 12), generator=g).float().to(memory_format=fmt)
    ref = torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
    (ref_grad,) = torch.autograd.grad((ref * up).sum(), x)
    targets, out = _graph_targets(upsample_nearest_2x, x)
    assert "interpolate" not in targets and "expand" in targets, targets
    assert torch.equal(out, ref) and out.is_contiguous(memory_format=fmt) == ref.is_contiguous(memory_format=fmt)
    (grad,) = torch.autograd.grad((out * up).sum(), x)
    assert torch.equal(grad, ref_grad)
    assert "interpolate" in _graph_targets(torch.nn.functional.interpolate, x, None, 2.0)[0]  # the recorder sees it
    # eager: F.interpolate itself (its CPU kernels were 2-9x faster than the broadcast's copy and reduction)
    assert torch.equal(upsample_nearest_2x(x), ref)
    block = Upsample(3).to(memory_format=fmt)
    targets, out = _graph_targets(block, x)
    assert "interpolate" not in targets
    torch.testing.assert_close(out, block(x), rtol=0, atol=0)
