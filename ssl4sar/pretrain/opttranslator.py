"""OptTranslator (spec §5.3): dense SAR → 14-band optical translation.

TYRION encoder + decoder on the SAR crop (B, 1, C, C) → features (B, E, C, C) → Conv1×1(E → 14) → (B, 14, C, C);
loss = mean absolute error over all pixels and the 14 bands against the optical crop in [0, 1] (no masking, no
output activation). The 1 × 1 convolution is named ``last_model_decoder_layer`` as in the reference; it is not under
``model.``, so fine-tuning drops it. Training stops early when ``val/loss`` has not improved for
``pretrain.opttranslator.early_stopping_patience`` epochs (100 in the paper).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssl4sar.config import paper_preset
from ssl4sar.pretrain.module import PretrainModule

__all__ = ["OptTranslator"]


class OptTranslator(PretrainModule):
    """OptTranslator pretraining (spec §5.3) as a LightningModule; the network is :attr:`model`.

    Args: those of :class:`~ssl4sar.pretrain.module.PretrainModule` (paper lr 0.005).
    """

    method = "opttranslator"

    def __init__(self, model_config: Mapping[str, Any], lr: float = paper_preset().pretrain.opttranslator.lr,
                 **kwargs: Any) -> None:
        super().__init__(model_config, lr=lr, **kwargs)
        self.last_model_decoder_layer = nn.Conv2d(self.model.embed_dim, int(self.hparams["n_optical"]),
                                                  kernel_size=1)

    def forward(self, sar: torch.Tensor) -> torch.Tensor:
        """SAR (B, 1, C, C) in [0, 1] → predicted optical bands (B, 14, C, C)."""
        return self.last_model_decoder_layer(self.encode_decode(self.embed(sar)))

    def compute_loss(self, batch: Mapping[str, Any], generator: torch.Generator | None = None) -> torch.Tensor:
        """Dense L1 between the predicted and the true optical crop (mean over pixels × bands)."""
        sar, optical = self._check_batch(batch, int(self.hparams["n_optical"]))
        return F.l1_loss(self.forward_now(sar).float(), optical.float())

    def baseline_loss(self, batch: Mapping[str, Any], band_means: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """Dense L1 of predicting ``band_means`` (14,) at every pixel."""
        _, optical = self._check_batch(batch, int(self.hparams["n_optical"]))
        means = band_means.to(optical.device, torch.float32)[None, :, None, None]
        return (optical.float() - means).abs().mean()

    @torch.no_grad()
    def reconstruct(self, sar: torch.Tensor, **_: Any) -> dict[str, torch.Tensor]:
        """Predictions for figures: ``prediction`` (B, 14, C, C); ``mask`` all False, ``masked_sar`` = the input."""
        pred = self(sar).float()
        mask = torch.zeros(sar.shape[0], *sar.shape[-2:], dtype=torch.bool, device=sar.device)
        return {"mask": mask, "masked_sar": sar.float(), "prediction": pred}
