"""MAH-DPO's reduction: the mean loss of each head's pairs, then the mean over the heads present in the batch."""

from __future__ import annotations

import torch


def per_head_mean(values: torch.Tensor, head_index: torch.Tensor, heads: int) -> torch.Tensor:
    """``[K]`` mean of ``values[B]`` over the pairs of each head (0 for a head with no pair)."""
    counts = torch.bincount(head_index, minlength=heads).to(values.dtype)
    sums = torch.zeros(heads, dtype=values.dtype, device=values.device).index_add(0, head_index, values)
    return sums / counts.clamp(min=1)


def mean_over_present_heads(values: torch.Tensor, head_index: torch.Tensor, heads: int) -> torch.Tensor:
    """Scalar ``mean_{k present} mean_{i: head(i)=k} values[i]``."""
    present = torch.bincount(head_index, minlength=heads) > 0
    return per_head_mean(values, head_index, heads)[present].mean()


def pair_weights(head_index: torch.Tensor, heads: int, dtype: torch.dtype) -> torch.Tensor:
    """``[B]`` weights ``c_i = 1 / (P · n_{head(i)})`` with ``Σ_i c_i values_i = mean_over_present_heads(values)``
    (P heads present, ``n_k`` pairs of head k)."""
    counts = torch.bincount(head_index, minlength=heads)
    present = (counts > 0).sum()
    return 1.0 / (present * counts[head_index]).to(dtype)
