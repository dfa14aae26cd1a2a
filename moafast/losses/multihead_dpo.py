"""MAH-DPO's multi-head DPO loss from hidden states, with the routed fused LM head.

Each preference pair belongs to one objective k and is scored by head k only (``weight[K, V, H]``):
``loss = mean over heads present in the batch of (mean DPO loss of that head's pairs)``.
The batch is the usual concatenation ``[chosen; rejected]`` of ``2B`` sequences.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from moafast.losses.dpo import dpo_loss
from moafast.ops import fused_linear_logprobs


class MultiHeadDPOOutput(NamedTuple):
    loss: torch.Tensor  # scalar
    chosen_logps: torch.Tensor  # [B] summed completion log-probs under each pair's head
    rejected_logps: torch.Tensor  # [B]
    metrics: dict[str, torch.Tensor]  # per head: loss, reward margin, accuracy, chosen/rejected rewards ([K])


def sequence_logps(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, head_index: torch.Tensor,
    bias: torch.Tensor | None = None, ignore_index: int = -100, chunk_size: int | None = None,
) -> torch.Tensor:
    """``[S]`` summed log-probs of ``labels[S, T]`` (``ignore_index`` outside the completion) under the
    head ``head_index[S]`` of ``weight[K, V, H]``, from ``hidden[S, T, H]``."""
    sequences, length, width = hidden.shape
    token_heads = head_index.to(torch.int64)[:, None].expand(sequences, length)
    logp, _ = fused_linear_logprobs(hidden.reshape(-1, width), weight, labels.reshape(-1),
                                    token_heads.reshape(-1), bias, ignore_index, chunk_size)
    return logp.view(sequences, length).sum(1)


def multi_head_dpo_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    head_index: torch.Tensor,
    ref_chosen_logps: torch.Tensor | None,
    ref_rejected_logps: torch.Tensor | None,
    *,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    chunk_size: int | None = None,
    **loss_kwargs: Any,
) -> MultiHeadDPOOutput:
    """MAH-DPO loss.

    Args:
        hidden: ``[2B, T, H]`` final hidden states of ``[chosen; rejected]`` (already aligned with ``labels``,
            i.e. position t predicts ``labels[:, t]``).
        weight: ``[K, V, H]`` heads. labels: ``[2B, T]`` with ``ignore_index`` outside the completions.
        head_index: ``[B]`` objective of each pair. ref_*_logps: ``[B]`` reference log-probs (``None``: zero).
        loss_kwargs: forwarded to :func:`moafast.losses.dpo_loss` (``loss_type``, ``beta``, ...).
    """
    if hidden.dim() != 3 or hidden.shape[0] % 2:
        raise ValueError(f"hidden: expected [2B, T, H] ([chosen; rejected]), got {list(hidden.shape)}")
    pairs = hidden.shape[0] // 2
    if tuple(head_index.shape) != (pairs,):
        raise ValueError(f"head_index: expected shape [B] = [{pairs}] (one objective per pair), "
                         f"got {list(head_index.shape)}")
    if weight.dim() != 3:
        raise ValueError(f"weight: expected [K, V, H] heads, got {list(weight.shape)}")
    logps = sequence_logps(hidden, weight, labels, torch.cat([head_index, head_index]), bias, ignore_index,
                           chunk_size)
    lengths = (labels != ignore_index).sum(1).to(logps.dtype)
    chosen, rejected = logps[:pairs], logps[pairs:]
    out = dpo_loss(chosen, rejected, ref_chosen_logps, ref_rejected_logps, chosen_lengths=lengths[:pairs],
                   rejected_lengths=lengths[pairs:], **loss_kwargs)
    heads = weight.shape[0]
    counts = torch.bincount(head_index.to(torch.int64), minlength=heads).to(logps.dtype)
    present = counts > 0

    def per_head_mean(values: torch.Tensor) -> torch.Tensor:
        sums = torch.zeros(heads, dtype=values.dtype, device=values.device).index_add(0, head_index.long(), values)
        return sums / counts.clamp(min=1)

    head_losses = per_head_mean(out.losses)
    loss = head_losses[present].mean()
    margins = out.chosen_rewards - out.rejected_rewards
    metrics = {
        "loss": head_losses.detach(),
        "reward_margin": per_head_mean(margins),
        "reward_accuracy": per_head_mean((margins > 0).to(margins.dtype)),
        "chosen_reward": per_head_mean(out.chosen_rewards),
        "rejected_reward": per_head_mean(out.rejected_rewards),
        "pairs": counts,
    }
    return MultiHeadDPOOutput(loss, chosen, rejected, metrics)


class MultiHeadDPOLoss(nn.Module):
    """Module form of :func:`multi_head_dpo_loss`; the loss configuration is fixed at construction."""

    def __init__(self, ignore_index: int = -100, chunk_size: int | None = None, **loss_kwargs: Any) -> None:
        super().__init__()
        self.ignore_index, self.chunk_size, self.loss_kwargs = ignore_index, chunk_size, loss_kwargs

    def forward(self, hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, head_index: torch.Tensor,
                ref_chosen_logps: torch.Tensor | None = None, ref_rejected_logps: torch.Tensor | None = None,
                bias: torch.Tensor | None = None) -> MultiHeadDPOOutput:
        return multi_head_dpo_loss(hidden, weight, labels, head_index, ref_chosen_logps, ref_rejected_logps,
                                   bias=bias, ignore_index=self.ignore_index, chunk_size=self.chunk_size,
                                   **self.loss_kwargs)
