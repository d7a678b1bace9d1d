"""Self-supervised pretraining of TYRION on unlabeled Sentinel-1 SAR with Sentinel-2 targets (spec §5).

- :class:`~ssl4sar.pretrain.optsimmim.OptSimMIM` — masked SAR tokens, predict the optical pixels under them (§5.2);
- :class:`~ssl4sar.pretrain.opttranslator.OptTranslator` — dense SAR → optical translation (§5.3);
- :func:`~ssl4sar.pretrain.common.pretrain` — the training entry point (``ssl4sar pretrain``).

Both keep the network as attribute ``model``: their checkpoints initialise fine-tuning directly (encoder and
decoder, spec §5.4), e.g. ``ssl4sar finetune --init runs/optsimmim/checkpoints/last.ckpt``.
"""

from __future__ import annotations

from ssl4sar.pretrain.common import METHODS, PretrainModule, PretrainResult, pretrain
from ssl4sar.pretrain.optsimmim import OptSimMIM, patchify, random_token_mask
from ssl4sar.pretrain.opttranslator import OptTranslator

__all__ = ["METHODS", "OptSimMIM", "OptTranslator", "PretrainModule", "PretrainResult", "patchify", "pretrain",
           "random_token_mask"]
