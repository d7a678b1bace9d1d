"""ssl4sar — glacier calving-front extraction from SAR imagery with multimodal self-supervised pretraining.

Implements the SSL4SAR method (Gourmelon et al., IEEE TGRS 63, 2025, doi:10.1109/TGRS.2025.3580945):
the TYRION network (SwinV2-T encoder + residual CNN decoder), OptSimMIM / OptTranslator pretraining,
fine-tuning on the CaFFe benchmark, sliding-window inference, post-processing and the mean distance error.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__"]
