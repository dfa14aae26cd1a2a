"""moafast's kernels as torch.library ops (namespace ``torch.ops.moafast``), each with a fake kernel,
registered autograd and a plain-PyTorch reference in :mod:`moafast.reference`."""

from moafast.ops.fused_linear_logprobs import fused_linear_logprobs
from moafast.ops.hypervolume import hypervolume, hypervolume_contributions, hypervolume_with_contributions
from moafast.ops.logprobs import logprobs_from_logits
from moafast.ops.tilted_sampling import tilted_logits, tilted_sample
from moafast.ops.topk_logsumexp import topk_with_logsumexp

__all__ = [
    "fused_linear_logprobs",
    "hypervolume",
    "hypervolume_contributions",
    "hypervolume_with_contributions",
    "logprobs_from_logits",
    "tilted_logits",
    "tilted_sample",
    "topk_with_logsumexp",
]
