"""Plain-PyTorch references for every moafast op: the definitions the kernels are tested against."""

from moafast.reference.fused_linear_logprobs import fused_linear_logprobs
from moafast.reference.logprobs import logprobs_from_logits

__all__ = ["fused_linear_logprobs", "logprobs_from_logits"]
