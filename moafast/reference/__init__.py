"""Plain-PyTorch references for every moafast op: the definitions the kernels are tested against."""

from moafast.reference.logprobs import logprobs_from_logits

__all__ = ["logprobs_from_logits"]
