"""Reference for :func:`moafast.ops.fused_linear_logprobs`: materialise every head's full logits."""

from __future__ import annotations

import torch

from moafast.reference.logprobs import logprobs_from_logits


def fused_linear_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    head_index: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All K heads' logits ``[K, N, V]``, log-softmax statistics, then the routed head per token
    (``head_index``), all heads (``[K, N]``), or the single head of a ``[V, H]`` weight."""
    weights = weight if weight.dim() == 3 else weight.unsqueeze(0)
    logits = torch.einsum("nh,kvh->knv", hidden, weights)
    if bias is not None:
        logits = logits + (bias if bias.dim() == 2 else bias.unsqueeze(0)).unsqueeze(1)
    per_head = [logprobs_from_logits(logits[k], targets, ignore_index) for k in range(weights.shape[0])]
    logp = torch.stack([p for p, _ in per_head])
    lse = torch.stack([s for _, s in per_head])
    if weight.dim() == 2:
        return logp[0], lse[0]
    if head_index is None:
        return logp, lse
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    safe = head_index.long().clamp(0, weights.shape[0] - 1)
    return logp[safe, rows], lse[safe, rows]
