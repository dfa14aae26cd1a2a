"""Preference losses on per-sequence log-probabilities."""

from moafast.losses.dpo import DPO_LOSS_TYPES, DPOLoss, dpo_loss
from moafast.losses.fused_linear_dpo import fused_linear_dpo_loss
from moafast.losses.multihead_dpo import MultiHeadDPOLoss, MultiHeadDPOOutput, multi_head_dpo_loss, sequence_logps

__all__ = [
    "DPO_LOSS_TYPES", "DPOLoss", "MultiHeadDPOLoss", "MultiHeadDPOOutput", "dpo_loss", "fused_linear_dpo_loss", "multi_head_dpo_loss",
    "sequence_logps",
]
