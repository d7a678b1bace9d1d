"""The TYRION network: a timm SwinV2 encoder and a residual CNN decoder (spec §4).

Layout of the published model (paper preset, 512 × 512 px input, window 16)::

    SAR (B, 1, 512, 512) in [0, 1]
      └ embed   : Conv2d(1→96, k4 s4) + LayerNorm           → tokens (B, 128, 128, 96)   (NHWC)
      └ encode  : 4 SwinV2 stages (timm)                     → skips (B, 96, 128, 128), (B, 192, 64, 64),
                                                                      (B, 384, 32, 32), (B, 768, 16, 16)
      └ decode  : residual CNN steps 0–5 (table in §4.3)     → features (B, 96, 512, 512)
      └ head    : Conv2d(96→K, 1×1)                          → logits (B, K, 512, 512)

The encoder is :class:`timm.models.swin_transformer_v2.SwinTransformerV2`, used as a feature extractor.
Each skip feature is the output of a timm stage: timm (≥ 0.9) puts the patch merging at the *start* of
the next stage, so the output of timm stage ``i`` is exactly the official "before downsampling" feature
``x_pre_down`` of stage ``i``. timm's implementation matches the official one in every numerical detail
that matters here (cosine attention with ``logit_scale`` clamped at ln 100, continuous position bias from
a float32 log-spaced table, −100 shifted-window mask, the 2 × 2 merge order (0,0),(1,0),(0,1),(1,1), and
window := grid, shift := 0 where a stage's grid is not larger than the window). The equivalence test
against the official logits is ``tests/test_reference_tyrion.py``.

Differences from the official module (documented deliberate deviations):

- The official wrapper repeats the 1-channel SAR image to 3 channels. Here the patch-embedding convolution
  takes 1 channel; 3-channel weights are summed over the input-channel axis when loaded
  (:mod:`ssl4sar.models.convert`), which gives the identical output.
- The unused official modules ``temb_proj`` (in every decoder block) and ``outputt`` are left out, and so
  are timm's final ``norm`` and classifier ``head`` (the official model has no final encoder norm).
- Random initialisation keeps SwinV2's zero-initialised residual post-norms (what timm and Microsoft's
  SwinV2 do); the official code overwrites them with ones (spec §11 item 5). This only affects runs
  without ImageNet or pretraining weights; ``zero_init_res_post_norm=False`` reproduces the official one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.models.swin_transformer_v2 import SwinTransformerV2
from torch import nn

from ssl4sar.config import paper_preset

log = logging.getLogger(__name__)

__all__ = ["Tyrion", "ResnetBlock", "Upsample", "ResUpBlock", "MODEL_CONFIG_DEFAULTS", "polyphase_upsample_conv",
           "upsample_nearest_2x"]

#: Defaults of :class:`Tyrion`: the ``model`` section of the paper preset (the paper model, spec §4.1). Keys are the
#: constructor's arguments and the keys accepted in a preset's ``model`` section.
MODEL_CONFIG_DEFAULTS: dict[str, Any] = paper_preset().model.to_dict()
_PAPER = paper_preset().model

GROUP_NORM_GROUPS = 32
GROUP_NORM_EPS = 1e-6


#: device types with an autocast mode (``torch.is_autocast_enabled`` raises for others, e.g. ``meta``)
_AUTOCAST_DEVICES = ("cpu", "cuda", "xpu", "mps")


def _group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm as the official ``Normalize``: 32 groups (or one per channel below 32), eps 1e-6."""
    groups = min(GROUP_NORM_GROUPS, channels)
    if channels % groups:
        raise ValueError(f"GroupNorm needs a channel count divisible by {GROUP_NORM_GROUPS}, got {channels} "
                         "(choose embed_dim as a multiple of 32)")
    return nn.GroupNorm(num_groups=groups, num_channels=channels, eps=GROUP_NORM_EPS, affine=True)


class ResnetBlock(nn.Module):
    """Residual block of the decoder (official ``ResnetBlock`` without its unused ``temb_proj``).

    ``GN → swish → conv3×3(in→out) → GN → swish → Dropout → conv3×3(out→out)`` plus the input, passed
    through a 1 × 1 convolution (``nin_shortcut``) when the channel count changes.
    Input and output are (B, C, H, W); the spatial size is unchanged.
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.norm1 = _group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm2 = _group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.nin_shortcut: nn.Module | None = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0)
            if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if self.nin_shortcut is not None:
            x = self.nin_shortcut(x)
        return x + h


class Upsample(nn.Module):
    """Nearest-neighbour ×2 upsampling followed by a 3 × 3 convolution (C → C). (B, C, H, W) → (B, C, 2H, 2W).

    With :attr:`polyphase` (off by default; :meth:`Tyrion.set_polyphase_upsampling`) the same function is computed
    without the upsampled map: each output pixel's 3 × 3 window on a nearest-upsampled map covers only 2 × 2 input
    pixels, so :func:`polyphase_upsample_conv` runs four 2 × 2 kernels (sums of the 3 × 3 weights) on the input —
    16/36 of the multiply-adds. Same weights and state dict; equal up to float rounding.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)
        self.polyphase = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.polyphase:
            return polyphase_upsample_conv(x, self.conv.weight, self.conv.bias)
        return self.conv(upsample_nearest_2x(x))


def upsample_nearest_2x(x: torch.Tensor) -> torch.Tensor:
    """``F.interpolate(x, scale_factor=2, mode="nearest")`` for (B, C, H, W) → (B, C, 2H, 2W), in ``x``'s layout.

    Eager, it is ``F.interpolate``. Under ``torch.compile`` it is the same map written as a broadcast of every pixel
    over a 2 × 2 block: inductor lowers interpolate's backward to an atomic scatter-add over the ×2 map (on the H200,
    the largest kernel of the compiled training step that is not a matrix product or convolution:
    ``book/bench/h200-2026-12-04-compile/``), the broadcast's backward to a reduction. Values and gradients are
    identical; eager PyTorch runs interpolate's own kernels faster than the broadcast's copy and reduction.
    """
    if not torch.compiler.is_compiling():
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    b, c, h, w = x.shape
    if x.is_contiguous():
        return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)
    # channels-last (the fast path's layout on CUDA): broadcast the NHWC view, so the result stays channels-last
    nhwc = x.permute(0, 2, 3, 1)
    return nhwc[:, :, None, :, None, :].expand(b, h, 2, w, 2, c).reshape(b, 2 * h, 2 * w, c).permute(0, 3, 1, 2)


def _phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """The four 2 × 2 kernels of a 3 × 3 ``weight`` (C_out, C_in, 3, 3) applied after nearest ×2 upsampling, as
    (4·C_out, C_in, 2, 2) in :func:`torch.nn.functional.pixel_shuffle` order (channel ``4·o + 2·k + l``).

    Output row ``2i`` reads upsampled rows ``2i − 1, 2i, 2i + 1`` = input rows ``i − 1, i, i``: taps (w₀, w₁ + w₂) on
    rows (i − 1, i); row ``2i + 1`` reads rows ``i, i, i + 1``: taps (w₀ + w₁, w₂) on rows (i, i + 1); columns alike.
    On the input padded by one pixel the 2 × 2 window of row phase ``a`` starts at padded row ``i + a``; placing
    phase ``a`` at sub-row ``k = 1 − a`` makes pixel-shuffled row ``2(i + a) + 1 − a = 2i + a + 1``: the output row
    plus one for both phases, so one crop aligns them (:func:`polyphase_upsample_conv`)."""

    def pair(w: torch.Tensor, dim: int, phase: int) -> torch.Tensor:
        t0, t1, t2 = w.unbind(dim)
        return torch.stack((t0, t1 + t2) if phase == 0 else (t0 + t1, t2), dim=dim)

    co = weight.shape[0]
    k = torch.stack([torch.stack([pair(pair(weight, 2, a), 3, c) for c in (1, 0)]) for a in (1, 0)])  # k, l order
    return k.permute(2, 0, 1, 3, 4, 5).reshape(4 * co, *weight.shape[1:2], 2, 2)


def polyphase_upsample_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``conv2d(interpolate(x, ×2, nearest), weight, bias, padding=1)`` for a 3 × 3 ``weight`` (C_out, C_in, 3, 3),
    computed on ``x`` (B, C_in, H, W) with four 2 × 2 kernels (:func:`_phase_kernels`) and a pixel shuffle.
    Returns (B, C_out, 2H, 2W)."""
    h, w = x.shape[-2:]
    q = F.conv2d(F.pad(x, (1, 1, 1, 1)), _phase_kernels(weight), None if bias is None else bias.repeat_interleave(4))
    return F.pixel_shuffle(q, 2)[..., 1:2 * h + 1, 1:2 * w + 1]


class ResUpBlock(nn.Module):
    """One decoder step: :class:`ResnetBlock` then, optionally, :class:`Upsample` (official ``ResUpSampleBlock``)."""

    def __init__(self, in_channels: int, out_channels: int, upsample: bool = True, dropout: float = 0.1) -> None:
        super().__init__()
        self.block = ResnetBlock(in_channels, out_channels, dropout=dropout)
        self.up: nn.Module | None = Upsample(out_channels) if upsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(x)
        if self.up is not None:
            x = self.up(x)
        return x


def _conv_region(conv: nn.Module, crop: torch.Tensor, start: int, lo: int, hi: int) -> torch.Tensor:
    """Rows and columns ``[lo, hi)`` of a 3 × 3 (padding 1) ``conv`` of a square map, from ``crop`` = that map's
    rows/cols ``[start, start + crop_side)``. The crop must reach one pixel beyond ``[lo, hi)`` on each side, or
    the map's border (where the convolution's zero padding is the true neighbour). ``conv`` may be an
    :class:`Upsample`: then ``crop`` is its input and ``start`` counts rows of the ×2 map."""
    out = conv(crop)
    return out[..., lo - start:hi - start, lo - start:hi - start]


def _as_int_list(value: Any, name: str) -> list[int]:
    if isinstance(value, int) or not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError(f"model config {name!r} must be a list of integers, got {value!r}")
    return [int(v) for v in value]


class Tyrion(nn.Module):
    """TYRION: SwinV2 encoder (timm) + residual CNN decoder with skips from all stages (spec §4).

    Args:
        img_size: side of the square input in pixels (the context crop; 512 in the paper). The network
            only accepts this size, like the official one.
        patch_size: patch-embedding stride in pixels (4).
        in_chans: input channels (1: the SAR image in [0, 1], no mean/std normalisation).
        embed_dim: channels of the first stage (96 for SwinV2-T); stage ``i`` has ``embed_dim · 2^i``.
            Must be a multiple of 32 (GroupNorm with 32 groups in the decoder).
        depths, num_heads: blocks and attention heads per stage.
        window_size: attention window side in tokens (16). A stage whose grid is not larger than the
            window attends globally (window := grid, no shift).
        mlp_ratio, qkv_bias, drop_path_rate, attn_drop_rate, proj_drop_rate: SwinV2 block settings.
        decoder_dropout: dropout inside each decoder residual block (0.1).
        num_classes: output classes (4: NA, rock, glacier, ocean / ice mélange).
        zero_init_res_post_norm: zero-initialise the residual post-norms of the random encoder
            (SwinV2 / timm behaviour); ``False`` reproduces the official initialisation (ones).
        fused_attention: run the window attention through ``scaled_dot_product_attention``
            (:mod:`ssl4sar.models.fast`); same weights and state dict, same numbers up to rounding. Off by default
            (the reference path); not part of :attr:`config`. Switch later with :meth:`set_fused_attention`.

    Under autocast (bf16 / fp16 mixed precision) the patch embedding and the 1 × 1 head run in float32
    (:attr:`fp32_embed_and_head`, on by default; not part of :attr:`config`): the embedding then reads the
    8-bit image unrounded (bf16 keeps 8 significant bits, so it would merge neighbouring grey levels) and the
    logits that decide near-tie pixels are not rounded either. Both layers cost well under 1 % of the FLOPs.
    On the demo model this halved the pixels whose class differs from the float32 reference path (see
    ``book/bench/cpu-2core-demo-accuracy-2026-12-04``). Without autocast nothing changes.

    ``forward`` maps (B, in_chans, img_size, img_size) to logits (B, num_classes, img_size, img_size).
    """

    def __init__(
        self,
        img_size: int = _PAPER.img_size,
        patch_size: int = _PAPER.patch_size,
        in_chans: int = _PAPER.in_chans,
        embed_dim: int = _PAPER.embed_dim,
        depths: Sequence[int] = tuple(_PAPER.depths),
        num_heads: Sequence[int] = tuple(_PAPER.num_heads),
        window_size: int = _PAPER.window_size,
        mlp_ratio: float = _PAPER.mlp_ratio,
        qkv_bias: bool = _PAPER.qkv_bias,
        drop_path_rate: float = _PAPER.drop_path_rate,
        attn_drop_rate: float = _PAPER.attn_drop_rate,
        proj_drop_rate: float = _PAPER.proj_drop_rate,
        decoder_dropout: float = _PAPER.decoder_dropout,
        num_classes: int = _PAPER.num_classes,
        zero_init_res_post_norm: bool = _PAPER.zero_init_res_post_norm,
        *,
        fused_attention: bool = False,
    ) -> None:
        super().__init__()
        depths = _as_int_list(depths, "depths")
        num_heads = _as_int_list(num_heads, "num_heads")
        self.config: dict[str, Any] = {
            "img_size": int(img_size), "patch_size": int(patch_size), "in_chans": int(in_chans),
            "embed_dim": int(embed_dim), "depths": list(depths), "num_heads": list(num_heads),
            "window_size": int(window_size), "mlp_ratio": float(mlp_ratio), "qkv_bias": bool(qkv_bias),
            "drop_path_rate": float(drop_path_rate), "attn_drop_rate": float(attn_drop_rate),
            "proj_drop_rate": float(proj_drop_rate), "decoder_dropout": float(decoder_dropout),
            "num_classes": int(num_classes), "zero_init_res_post_norm": bool(zero_init_res_post_norm),
        }
        self._validate(self.config)
        n_stages = len(depths)
        self.img_size = int(img_size)
        self.patch_size = int(patch_size)
        self.in_chans = int(in_chans)
        self.embed_dim = int(embed_dim)
        self.num_stages = n_stages
        self.num_classes = int(num_classes)
        self.stage_dims = [embed_dim * 2 ** i for i in range(n_stages)]
        grid = img_size // patch_size
        self.grid_sizes = [grid // 2 ** i for i in range(n_stages)]

        # --- encoder: timm SwinTransformerV2 as a feature extractor (no pretrained weights fetched) ---
        self.encoder = SwinTransformerV2(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, num_classes=0, global_pool="",
            embed_dim=embed_dim, depths=tuple(depths), num_heads=tuple(num_heads), window_size=window_size,
            mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_rate=0.0, proj_drop_rate=proj_drop_rate,
            attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate, strict_img_size=True,
        )
        # The official model has no final encoder norm and no classifier: remove them (no dead parameters).
        self.encoder.norm = nn.Identity()
        self.encoder.head = nn.Identity()
        if not zero_init_res_post_norm:
            for stage in self.encoder.layers:
                for blk in stage.blocks:
                    for norm in (blk.norm1, blk.norm2):
                        nn.init.ones_(norm.weight)
                        nn.init.zeros_(norm.bias)

        # --- decoder: the step table of spec §4.3, generalised to any stage count / width ---
        steps: list[nn.Module] = [ResUpBlock(self.stage_dims[-1], self.stage_dims[-1], upsample=False,
                                             dropout=decoder_dropout)]
        for i in reversed(range(n_stages)):
            dim = self.stage_dims[i]
            out = dim // 2 if i != 0 else dim
            steps.append(ResUpBlock(2 * dim, out, upsample=True, dropout=decoder_dropout))
        # one more ×2 step: the patch embedding divided the resolution by 4 = 2 × 2
        steps.append(ResUpBlock(embed_dim, embed_dim, upsample=True, dropout=decoder_dropout))
        self.decoder = nn.ModuleList(steps)
        self.head = nn.Conv2d(embed_dim, num_classes, kernel_size=1)
        #: under autocast, run the patch embedding and the head in float32 (see the class docstring)
        self.fp32_embed_and_head = True
        if fused_attention:
            self.set_fused_attention(True)

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _validate(cfg: Mapping[str, Any]) -> None:
        depths, heads = cfg["depths"], cfg["num_heads"]
        if len(depths) != len(heads) or not depths:
            raise ValueError(f"model config: depths {depths} and num_heads {heads} must be non-empty lists "
                             "of the same length (one entry per stage)")
        n = len(depths)
        if cfg["embed_dim"] % GROUP_NORM_GROUPS:
            raise ValueError(f"model config: embed_dim {cfg['embed_dim']} must be a multiple of "
                             f"{GROUP_NORM_GROUPS} (GroupNorm with {GROUP_NORM_GROUPS} groups in the decoder)")
        for i, h in enumerate(heads):
            if (cfg["embed_dim"] * 2 ** i) % h:
                raise ValueError(f"model config: stage {i} width {cfg['embed_dim'] * 2 ** i} is not divisible "
                                 f"by its {h} attention heads")
        reduction = cfg["patch_size"] * 2 ** (n - 1)
        if cfg["img_size"] % reduction:
            raise ValueError(f"model config: img_size {cfg['img_size']} px must be a multiple of "
                             f"patch_size · 2^(stages-1) = {reduction} px")
        grid = cfg["img_size"] // cfg["patch_size"]
        for i in range(n):
            g = grid // 2 ** i
            if g > cfg["window_size"] and g % cfg["window_size"]:
                raise ValueError(f"model config: stage {i} token grid {g} is larger than window_size "
                                 f"{cfg['window_size']} but not a multiple of it (the official SwinV2 "
                                 "requires whole windows)")
        if cfg["in_chans"] < 1 or cfg["num_classes"] < 1:
            raise ValueError("model config: in_chans and num_classes must be positive")

    @classmethod
    def from_config(cls, cfg_model: Mapping[str, Any]) -> Tyrion:
        """Build from a preset's ``model`` section (``load_preset(name)["model"]``) or a saved ``config``.

        Missing keys take the paper defaults (:data:`MODEL_CONFIG_DEFAULTS`); unknown keys raise
        ``ValueError`` (they are usually typos).
        """
        unknown = sorted(set(cfg_model) - set(MODEL_CONFIG_DEFAULTS))
        if unknown:
            raise ValueError(f"model config: unknown keys {unknown}; accepted keys are "
                             f"{sorted(MODEL_CONFIG_DEFAULTS)}")
        kwargs = {**MODEL_CONFIG_DEFAULTS, **dict(cfg_model)}
        return cls(**kwargs)

    # ------------------------------------------------------------------ pieces
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch embedding incl. its LayerNorm: (B, in_chans, H, W) → tokens (B, H/p, W/p, C) (NHWC).

        ``H = W = img_size`` pixels; ``p = patch_size``; ``C = embed_dim``. Token ``(r, c)`` covers pixels
        ``[r·p, (r+1)·p) × [c·p, (c+1)·p)``; flattened row-major it is token ``r · W/p + c``.
        """
        if x.ndim != 4 or x.shape[1] != self.in_chans or x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"Tyrion expects input of shape (B, {self.in_chans}, {self.img_size}, "
                             f"{self.img_size}), got {tuple(x.shape)}")
        return self._full_precision(self.encoder.patch_embed, x)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """The 1 × 1 :attr:`head`: decoder features (B, embed_dim, h, w) → logits (B, num_classes, h, w); float32
        under autocast (:attr:`fp32_embed_and_head`)."""
        return self._full_precision(self.head, features)

    def _full_precision(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``layer(x)``, in float32 with autocast switched off when autocast is on and :attr:`fp32_embed_and_head`."""
        device_type = x.device.type
        if self.fp32_embed_and_head and device_type in _AUTOCAST_DEVICES and torch.is_autocast_enabled(device_type):
            with torch.autocast(device_type, enabled=False):
                return layer(x.float())
        return layer(x)

    def encode(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Run the SwinV2 stages on tokens (B, h, w, C) (NHWC, as returned by :meth:`embed`).

        Returns one skip feature per stage, each (B, C_i, h_i, w_i) channels-first: the stage output
        before patch merging. For the paper model: (96, 128²), (192, 64²), (384, 32²), (768, 16²).
        The last one is also the bottleneck input of the decoder.
        """
        skips = []
        x = tokens
        for stage in self.encoder.layers:
            x = stage(x)
            skips.append(x.permute(0, 3, 1, 2))
        return skips

    def decode(self, skips: Sequence[torch.Tensor]) -> torch.Tensor:
        """Decoder steps 0 … stages+1 (spec §4.3) on the skip features of :meth:`encode`.

        Returns features (B, embed_dim, img_size, img_size), before the 1 × 1 :attr:`head`.
        Step 0 refines the deepest feature; step ``i`` (1 … stages) concatenates the running feature
        with skip ``stages − i`` (running feature first) and upsamples ×2; the last step upsamples ×2 once more.
        """
        n = self.num_stages
        if len(skips) != n:
            raise ValueError(f"decode expects {n} skip features, got {len(skips)}")
        x = self.decoder[0](skips[-1])
        for i in range(1, n + 1):
            x = self.decoder[i](torch.cat((x, skips[n - i]), dim=1))
        return self.decoder[n + 1](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """SAR (B, in_chans, img_size, img_size) in [0, 1] → logits (B, num_classes, img_size, img_size)."""
        return self.classify(self.decode(self.encode(self.embed(x))))

    def centre_logits(self, x: torch.Tensor, size: int) -> torch.Tensor:
        """The centre ``size × size`` px of :meth:`forward`'s logits, computing the last decoder convolutions only
        where they are needed.

        Sliding-window inference keeps only the centre ``T × T`` (T = C / 2) of each window's output. The last
        decoder step (a residual block at C/2 and the ×2 upsampling convolution at full resolution, about a third
        of the paper network's FLOPs) has no normalisation after its second and its upsampling convolution, so
        those two run on the needed region plus a 1-pixel halo: exact, not an approximation (the GroupNorm
        statistics before them are still taken over the whole map). Returns (B, num_classes, size, size); equal to
        ``forward(x)[..., p:p + size, p:p + size]`` with ``p = (img_size − size) // 2`` up to float rounding.
        """
        c = self.img_size
        if not 0 < int(size) <= c:
            raise ValueError(f"centre size must be in 1..{c} px, got {size}")
        lo = (c - int(size)) // 2
        hi = lo + int(size)
        feats = self.encode(self.embed(x))
        n = self.num_stages
        y = self.decoder[0](feats[-1])
        for i in range(1, n + 1):
            y = self.decoder[i](torch.cat((y, feats[n - i]), dim=1))
        last = self.decoder[n + 1]
        assert isinstance(last, ResUpBlock) and last.up is not None
        half = y.shape[-1]  # C / 2
        # rows/cols of the ×2 map the upsampling conv reads, and the C/2 rows they repeat
        i0 = max(lo - 1, 0) // 2
        i1 = (min(hi + 1, c) - 1) // 2 + 1
        blk = last.block
        h = blk.conv1(F.silu(blk.norm1(y)))
        h = F.silu(blk.norm2(h))  # statistics over the whole map
        s, e = max(i0 - 1, 0), min(i1 + 1, half)
        h = _conv_region(blk.conv2, blk.dropout(h[..., s:e, s:e]), s, i0, i1)
        short = y[..., i0:i1, i0:i1]
        if blk.nin_shortcut is not None:
            short = blk.nin_shortcut(short)
        out = _conv_region(last.up, short + h, 2 * i0, lo, hi)  # the ×2 map's rows 2·i0 … 2·i1 − 1
        return self.classify(out)

    # ------------------------------------------------------------------ execution paths
    def set_fused_attention(self, enabled: bool = True) -> Tyrion:
        """Switch the encoder's window attention to the fused SDPA path (or back to timm's); returns ``self``.

        Weights, buffers and the state dict are unchanged (see :mod:`ssl4sar.models.fast`).
        """
        from ssl4sar.models.fast import disable_fused_attention, enable_fused_attention

        (enable_fused_attention if enabled else disable_fused_attention)(self.encoder)
        return self

    def set_polyphase_upsampling(self, enabled: bool = True) -> Tyrion:
        """Compute the decoder's ×2 upsampling convolutions without the upsampled map (:class:`Upsample`): 16/36 of
        their multiply-adds, same weights, same numbers up to rounding. Returns ``self``. The library switches it
        on for inference (:func:`ssl4sar.models.fast.optimize_for_device`); training keeps the official form."""
        for m in self.modules():
            if isinstance(m, Upsample):
                m.polyphase = bool(enabled)
        return self

    @property
    def polyphase_upsampling(self) -> bool:
        """Whether the ×2 upsampling convolutions run in polyphase form (see :meth:`set_polyphase_upsampling`)."""
        return all(m.polyphase for m in self.modules() if isinstance(m, Upsample))

    @property
    def fused_attention(self) -> bool:
        """Whether the window attention runs through the fused SDPA path."""
        from ssl4sar.models.fast import fused_attention_enabled

        return fused_attention_enabled(self.encoder)

    # ------------------------------------------------------------------ bookkeeping
    def num_params(self, trainable_only: bool = False) -> int:
        """Number of parameters (all of them take part in ``forward``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def extra_repr(self) -> str:
        c = self.config
        return (f"img_size={c['img_size']}, embed_dim={c['embed_dim']}, depths={c['depths']}, "
                f"window_size={c['window_size']}, num_classes={c['num_classes']}")
