"""Integrations of moafast's ops with other libraries' extension points (HF transformers)."""

from moafast.integrations.hf import MultiRewardTiltProcessor

__all__ = ["MultiRewardTiltProcessor"]
