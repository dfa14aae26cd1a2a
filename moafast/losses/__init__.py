"""Preference losses on per-sequence log-probabilities."""

from moafast.losses.dpo import DPO_LOSS_TYPES, DPOLoss, dpo_loss

__all__ = ["DPO_LOSS_TYPES", "DPOLoss", "dpo_loss"]
