"""Reference for :func:`moafast.ops.logprobs_from_logits`, with the same NaN/inf policy."""

from __future__ import annotations

import torch


def logprobs_from_logits(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logp, lse)`` over the last dimension, computed in float32 (float64 for float64 logits).

    Differentiable through autograd; rows with no finite mass (all ``-inf``) give ``-inf`` and a
    zero gradient, ignored rows give 0 and a zero gradient.
    """
    accumulation = torch.float64 if logits.dtype == torch.float64 else torch.float32
    x = logits.to(accumulation)
    valid = targets != ignore_index
    safe_targets = torch.where(valid, targets, torch.zeros_like(targets)).long()
    row_max = x.amax(dim=-1, keepdim=True).detach()
    no_mass = row_max == float("-inf")
    shifted = x - torch.where(no_mass, torch.zeros_like(row_max), row_max)
    sum_exp = shifted.exp().sum(dim=-1, keepdim=True)
    lse = torch.where(no_mass, row_max, row_max + torch.where(no_mass, torch.ones_like(sum_exp), sum_exp).log())
    target_logit = x.gather(-1, safe_targets.unsqueeze(-1))
    logp = torch.where(no_mass, row_max, target_logit - lse).squeeze(-1)
    lse = lse.squeeze(-1)
    zero = torch.zeros((), dtype=accumulation, device=logits.device)
    return torch.where(valid, logp, zero), torch.where(valid, lse, zero)
