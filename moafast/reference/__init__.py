"""Plain-PyTorch references for every moafast op: the definitions the kernels are tested against."""

from moafast.reference.fused_linear_logprobs import fused_linear_logprobs
from moafast.reference.hypervolume import hypervolume, hypervolume_contributions
from moafast.reference.logprobs import logprobs_from_logits
from moafast.reference.tilted_sampling import tilted_logits, tilted_sample, topk_with_logsumexp

__all__ = [
    "fused_linear_logprobs",
    "hypervolume",
    "hypervolume_contributions",
    "logprobs_from_logits",
    "tilted_logits",
    "tilted_sample",
    "topk_with_logsumexp",
]
