"""OptSimMIM (spec §5.2): masked SAR token modelling with the co-registered optical image as the target.

For a SAR context crop (B, 1, C, C) and its optical crop (B, 14, C, C), with token size p = the patch size (4):

1. tokens = TYRION patch embedding incl. its LayerNorm → (B, N, E), N = (C/p)², row-major;
2. per sample, ``int(N·(1 − mask_ratio))`` tokens are kept and the rest masked, uniformly without replacement,
   except that token 0 (top-left) is never masked (:func:`random_token_mask`, lightly's rule, where token 0 is a
   class token); with the paper's 512 px crop and ratio 0.3: 11 468 kept, 4 916 masked;
3. masked tokens are replaced by the mask token, an all-zeros, non-trainable vector (a buffer here);
4. TYRION encoder + decoder → features (B, E, C, C) → Conv1×1(E→3) → a new patch embedding (Conv 3→E, kernel
   and stride p, + LayerNorm) → (B, N, E) → the masked positions → Linear(E → p·p·14);
5. target: the optical crop patchified (:func:`patchify`) into (B, N, p·p·14), inside a token ordered
   (row in patch, column in patch, band), at the masked positions;
6. loss: mean absolute error over the masked tokens and their p·p·14 values (no output activation).

The head modules are named as in the reference (``last_model_decoder_layer``, ``patch_embed_after_decoder``,
``decoder`` → here ``token_head``, ``mask_token``); none of them is under ``model.``, so fine-tuning drops them.
lightly is not a dependency: :func:`patchify` and :func:`random_token_mask` are written here and checked
against the official code's numbers (``tests/test_reference_patchify.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssl4sar.config import paper_preset
from ssl4sar.pretrain.module import PretrainModule

__all__ = ["OptSimMIM", "PatchEmbed", "patchify", "unpatchify", "random_token_mask", "token_mask",
           "mask_to_image"]

log = logging.getLogger(__name__)
_PAPER = paper_preset().pretrain.optsimmim  # the constructor defaults


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) → tokens (B, (H/p)·(W/p), p·p·C).

    Tokens are row-major over the (H/p, W/p) grid; inside a token the values are ordered (row in patch, column in
    patch, channel) — lightly's ``patchify`` (einsum ``nchpwq → nhwpqc``), which the reference uses.
    """
    b, c, h, w = images.shape
    p = int(patch_size)
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} px is not a multiple of the token size {p} px")
    x = images.reshape(b, c, h // p, p, w // p, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(tokens: torch.Tensor, patch_size: int, channels: int, grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, h·w, p·p·C) → (B, C, h·p, w·p) for a token grid ``(h, w)``."""
    b, n, d = tokens.shape
    p, c = int(patch_size), int(channels)
    gh, gw = int(grid[0]), int(grid[1])
    if n != gh * gw or d != p * p * c:
        raise ValueError(f"tokens {tuple(tokens.shape)} do not fit a {gh}x{gw} grid of {p}x{p}x{c} values")
    x = tokens.reshape(b, gh, gw, p, p, c)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(b, c, gh * p, gw * p)


def random_token_mask(size: tuple[int, int], mask_ratio: float = 0.6, mask_class_token: bool = False,
                      device: torch.device | str | None = None, generator: torch.Generator | None = None,
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token masking as lightly's ``random_token_mask`` (the reference's rule).

    ``size = (batch, tokens)``. ``num_keep = int(tokens · (1 − mask_ratio))``; uniform noise per token, token 0
    given the lowest noise unless ``mask_class_token`` (so it is always kept, and ``num_keep ≥ 1``); the tokens
    sorted by noise: the first ``num_keep`` are kept, the rest masked. Returns ``(idx_keep (B, num_keep),
    idx_mask (B, tokens − num_keep))`` int64 on ``device``. The noise is drawn on the generator's device (CPU
    when none is given) with torch's global generator unless ``generator`` is given.
    """
    batch, n = int(size[0]), int(size[1])
    num_keep = int(n * (1 - mask_ratio))
    noise_device = generator.device if generator is not None else torch.device("cpu")
    noise = torch.rand(batch, n, generator=generator, device=noise_device)
    if not mask_class_token and n > 0:
        noise[:, 0] = -1
        num_keep = max(1, num_keep)
    order = torch.argsort(noise, dim=1)
    idx_keep, idx_mask = order[:, :num_keep], order[:, num_keep:]
    if device is not None:
        idx_keep, idx_mask = idx_keep.to(device), idx_mask.to(device)
    return idx_keep, idx_mask


def token_mask(idx_mask: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """Boolean (B, n_tokens), True at the masked token indices ``idx_mask`` (B, M)."""
    mask = torch.zeros(idx_mask.shape[0], int(n_tokens), dtype=torch.bool, device=idx_mask.device)
    return mask.scatter_(1, idx_mask, True)


def mask_to_image(mask: torch.Tensor, grid: tuple[int, int], patch_size: int) -> torch.Tensor:
    """Token mask (B, h·w) → pixel mask (B, h·p, w·p) (True where the pixel's token is masked)."""
    b = mask.shape[0]
    m = mask.reshape(b, int(grid[0]), int(grid[1]))
    return m.repeat_interleave(int(patch_size), dim=1).repeat_interleave(int(patch_size), dim=2)


class PatchEmbed(nn.Module):
    """Patch embedding of the reference's SwinV2: Conv2d(in → E, kernel = stride = p) → flatten → LayerNorm(E).

    (B, in, H, W) → tokens (B, (H/p)·(W/p), E), row-major.
    """

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


def _init_linear_ln(module: nn.Module) -> None:
    """The reference's ``_init_weights`` for the new modules: Linear trunc-normal(0.02), bias 0; LayerNorm 1 / 0."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class OptSimMIM(PretrainModule):
    """OptSimMIM pretraining (spec §5.2) as a LightningModule; the network is :attr:`model`.

    Args (besides those of :class:`~ssl4sar.pretrain.module.PretrainModule`):
        mask_ratio: fraction of the tokens masked (0.3 in the paper; ``int`` rounding of the kept count).
        token_size: token side in pixels; must equal the model's ``patch_size`` (4).
    """

    method = "optsimmim"

    def __init__(self, model_config: Mapping[str, Any], lr: float = _PAPER.lr, mask_ratio: float = _PAPER.mask_ratio,
                 token_size: int = _PAPER.token_size, **kwargs: Any) -> None:
        super().__init__(model_config, lr=lr, mask_ratio=float(mask_ratio), token_size=int(token_size), **kwargs)
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if int(token_size) != self.model.patch_size:
            raise ValueError(f"token_size {token_size} must equal the model's patch_size {self.model.patch_size} "
                             "(masking acts on the patch-embedding tokens)")
        e, p, c = self.model.embed_dim, self.model.patch_size, int(self.hparams["n_optical"])
        self.mask_ratio = float(mask_ratio)
        self.token_size = p
        self.grid = (self.model.img_size // p, self.model.img_size // p)
        self.register_buffer("mask_token", torch.zeros(1, 1, e))   # all zeros, never trained (reference)
        self.last_model_decoder_layer = nn.Conv2d(e, 3, kernel_size=1)
        self.patch_embed_after_decoder = PatchEmbed(3, e, p)
        self.token_head = nn.Linear(e, p * p * c)
        self.patch_embed_after_decoder.apply(_init_linear_ln)
        self.token_head.apply(_init_linear_ln)

    @property
    def n_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    def draw_mask(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Masked token indices (B, M) on this module's device (:func:`random_token_mask`)."""
        _, idx_mask = random_token_mask((batch_size, self.n_tokens), self.mask_ratio, device=self.device,
                                        generator=generator)
        return idx_mask

    def forward(self, sar: torch.Tensor, idx_mask: torch.Tensor) -> torch.Tensor:
        """SAR (B, 1, C, C) in [0, 1] and masked indices (B, M) → predictions (B, M, p·p·14) of the masked tokens."""
        tokens = self.embed(sar)
        b, h, w, e = tokens.shape
        flat = tokens.reshape(b, h * w, e)
        masked = token_mask(idx_mask, h * w)
        flat = torch.where(masked[..., None], self.mask_token.to(flat.dtype), flat)
        feats = self.encode_decode(flat.reshape(b, h, w, e))
        reembedded = self.patch_embed_after_decoder(self.last_model_decoder_layer(feats))
        picked = torch.gather(reembedded, 1, idx_mask[..., None].expand(-1, -1, reembedded.shape[-1]))
        return self.token_head(picked)

    def target(self, optical: torch.Tensor, idx_mask: torch.Tensor) -> torch.Tensor:
        """The optical values of the masked tokens (B, M, p·p·14) (:func:`patchify` order)."""
        tokens = patchify(optical, self.token_size)
        return torch.gather(tokens, 1, idx_mask[..., None].expand(-1, -1, tokens.shape[-1]))

    def compute_loss(self, batch: Mapping[str, Any], generator: torch.Generator | None = None,
                     idx_mask: torch.Tensor | None = None) -> torch.Tensor:
        """L1 between predicted and true optical values of the masked tokens (mean over tokens × values)."""
        sar, optical = self._check_batch(batch, int(self.hparams["n_optical"]))
        if idx_mask is None:
            idx_mask = self.draw_mask(sar.shape[0], generator)
        pred = self.forward_now(sar, idx_mask)
        return F.l1_loss(pred.float(), self.target(optical, idx_mask).float())

    def baseline_loss(self, batch: Mapping[str, Any], band_means: torch.Tensor,
                      generator: torch.Generator | None = None, idx_mask: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """L1 on the masked tokens of predicting ``band_means`` (14,) at every pixel (same mask draw as
        :meth:`compute_loss` for the same ``generator``)."""
        sar, optical = self._check_batch(batch, int(self.hparams["n_optical"]))
        if idx_mask is None:
            idx_mask = self.draw_mask(sar.shape[0], generator)
        target = self.target(optical, idx_mask.to(optical.device)).float()
        pred = band_means.to(target.device, torch.float32).repeat(self.token_size * self.token_size)
        return (target - pred).abs().mean()

    @torch.no_grad()
    def reconstruct(self, sar: torch.Tensor, idx_mask: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Predictions as images, for figures.

        Returns ``mask`` (B, C, C) bool (pixels of masked tokens), ``masked_sar`` (B, 1, C, C) (the SAR crop
        with the masked tokens set to 0 — what the mask token stands for) and ``prediction`` (B, 14, C, C)
        (predicted optical values on the masked tokens, 0 elsewhere), all on the module's device.
        """
        if idx_mask is None:
            idx_mask = self.draw_mask(sar.shape[0], generator)
        pred = self(sar, idx_mask).float()
        b, c = sar.shape[0], int(self.hparams["n_optical"])
        p = self.token_size
        tokens = torch.zeros(b, self.n_tokens, p * p * c, device=pred.device)
        tokens.scatter_(1, idx_mask[..., None].expand(-1, -1, p * p * c), pred)
        mask = mask_to_image(token_mask(idx_mask, self.n_tokens), self.grid, p)
        return {"mask": mask, "masked_sar": sar.float() * (~mask[:, None]).to(sar.dtype),
                "prediction": unpatchify(tokens, p, c, self.grid)}
