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
from moafast.losses.fused_linear_dpo import fused_linear_dpo_loss
from moafast.losses.head_means import mean_over_present_heads, per_head_mean
from moafast.losses.pair_gradients import PAIR_LOCAL_LOSS_TYPES
from moafast.ops import fused_linear_logprobs


class MultiHeadDPOOutput(NamedTuple):
    loss: torch.Tensor  # scalar
    chosen_logps: torch.Tensor  # [B] summed completion log-probs under each pair's head
    rejected_logps: torch.Tensor  # [B]
    metrics: dict[str, torch.Tensor]  # per head: loss, reward margin, accuracy, chosen/rejected rewards ([K])


def sequence_logps(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, head_index: torch.Tensor | None = None,
    bias: torch.Tensor | None = None, ignore_index: int = -100, chunk_size: int | None = None,
) -> torch.Tensor:
    """Summed log-probs of ``labels[S, T]`` (``ignore_index`` outside the completion) from ``hidden[S, T, H]``
    through :func:`moafast.ops.fused_linear_logprobs`: ``[S]`` for one head ``weight[V, H]`` or with
    ``head_index[S]`` routing each sequence to a head of ``weight[K, V, H]``; ``[K, S]`` for every head of
    ``weight[K, V, H]`` when ``head_index`` is None."""
    sequences, length, width = hidden.shape
    routing = None if head_index is None else \
        head_index.to(torch.int64)[:, None].expand(sequences, length).reshape(-1)
    logp, _ = fused_linear_logprobs(hidden.reshape(-1, width), weight, labels.reshape(-1), routing, bias,
                                    ignore_index, chunk_size)
    return logp.view(*logp.shape[:-1], sequences, length).sum(-1)


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
    grad_in_forward: bool | None = None,
    ref_weight: torch.Tensor | None = None,
    ref_hidden: torch.Tensor | None = None,
    **loss_kwargs: Any,
) -> MultiHeadDPOOutput:
    """MAH-DPO loss.

    Args:
        hidden: ``[2B, T, H]`` final hidden states of ``[chosen; rejected]`` (already aligned with ``labels``,
            i.e. position t predicts ``labels[:, t]``).
        weight: ``[K, V, H]`` heads. labels: ``[2B, T]`` with ``ignore_index`` outside the completions.
        head_index: ``[B]`` objective of each pair. ref_*_logps: ``[B]`` reference log-probs; when both are
            ``None``: from ``ref_weight`` (``[V, H]``, or ``[K, V, H]`` routed like the policy) applied to
            ``ref_hidden`` (the reference backbone's ``[2B, T, H]``; default ``hidden``), without gradient; with
            no ``ref_weight`` either, a zero reference (reference-free).
        grad_in_forward: compute the gradients in the forward, 3 GEMMs, chunks of whole pairs
            (:func:`moafast.losses.fused_linear_dpo_loss`); ``False``: the log-prob op's 4-GEMM recompute path,
            chunks of ``chunk_size`` tokens, differentiable through the returned log-probs too. Default: on when a
            gradient is needed and every loss type is pair-local (not aot/aot_unpaired).
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
    heads = weight.shape[0]
    head_index = head_index.to(torch.int64)
    if ref_weight is not None:
        if ref_chosen_logps is not None or ref_rejected_logps is not None:
            raise ValueError("ref_weight: give either reference log-probs or reference weights, not both")
        with torch.no_grad():
            ref_logps = sequence_logps((hidden if ref_hidden is None else ref_hidden).detach(), ref_weight.detach(),
                                       labels, torch.cat([head_index, head_index]) if ref_weight.dim() == 3 else None,
                                       None, ignore_index, chunk_size)
        ref_chosen_logps, ref_rejected_logps = ref_logps[:pairs], ref_logps[pairs:]
    loss_types = loss_kwargs.get("loss_type", "sigmoid")
    loss_types = {loss_types} if isinstance(loss_types, str) else set(loss_types)
    if grad_in_forward is None:
        needs_grad = torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (hidden, weight, bias))
        grad_in_forward = needs_grad and loss_types <= PAIR_LOCAL_LOSS_TYPES
    lengths = (labels != ignore_index).sum(1)
    if grad_in_forward:
        loss, chosen, rejected = fused_linear_dpo_loss(
            hidden, weight, labels, head_index, ref_chosen_logps, ref_rejected_logps, bias=bias,
            ignore_index=ignore_index, chunk_size=chunk_size, **loss_kwargs)
        out = dpo_loss(chosen, rejected, ref_chosen_logps, ref_rejected_logps, chosen_lengths=lengths[:pairs],
                       rejected_lengths=lengths[pairs:], **loss_kwargs)
    else:
        logps = sequence_logps(hidden, weight, labels, torch.cat([head_index, head_index]), bias, ignore_index,
                               chunk_size)
        chosen, rejected = logps[:pairs], logps[pairs:]
        out = dpo_loss(chosen, rejected, ref_chosen_logps, ref_rejected_logps, chosen_lengths=lengths[:pairs],
                       rejected_lengths=lengths[pairs:], **loss_kwargs)
        loss = mean_over_present_heads(out.losses, head_index, heads)
    margins = (out.chosen_rewards - out.rejected_rewards).detach()
    metrics = {
        "loss": per_head_mean(out.losses.detach(), head_index, heads),
        "reward_margin": per_head_mean(margins, head_index, heads),
        "reward_accuracy": per_head_mean((margins > 0).to(margins.dtype), head_index, heads),
        "chosen_reward": per_head_mean(out.chosen_rewards, head_index, heads),
        "rejected_reward": per_head_mean(out.rejected_rewards, head_index, heads),
        "pairs": torch.bincount(head_index, minlength=heads).to(margins.dtype),
    }
    return MultiHeadDPOOutput(loss, chosen, rejected, metrics)


class MultiHeadDPOLoss(nn.Module):
    """Module form of :func:`multi_head_dpo_loss`; the loss configuration is fixed at construction."""

    def __init__(self, ignore_index: int = -100, chunk_size: int | None = None, grad_in_forward: bool | None = None,
                 **loss_kwargs: Any) -> None:
        super().__init__()
        self.ignore_index, self.chunk_size, self.loss_kwargs = ignore_index, chunk_size, loss_kwargs
        self.grad_in_forward = grad_in_forward

    def forward(self, hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, head_index: torch.Tensor,
                ref_chosen_logps: torch.Tensor | None = None, ref_rejected_logps: torch.Tensor | None = None,
                bias: torch.Tensor | None = None, ref_weight: torch.Tensor | None = None,
                ref_hidden: torch.Tensor | None = None) -> MultiHeadDPOOutput:
        return multi_head_dpo_loss(hidden, weight, labels, head_index, ref_chosen_logps, ref_rejected_logps,
                                   bias=bias, ignore_index=self.ignore_index, chunk_size=self.chunk_size,
                                   grad_in_forward=self.grad_in_forward, ref_weight=ref_weight,
                                   ref_hidden=ref_hidden, **self.loss_kwargs)
