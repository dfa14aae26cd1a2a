"""HaM's training module: K heads on a backbone (a :class:`MultiHeadCausalLM`) scored on a batch of scored
sequences; ``forward`` returns the loss so that DDP synchronises it."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from moafast.methods.ham.objective import ham_hypervolume, objective_matrix
from moafast.losses import sequence_logps
from moafast.methods.mah_dpo.model import MultiHeadCausalLM, shift_labels


class HaMOutput(NamedTuple):
    loss: torch.Tensor  # -HV of the normalised points
    hypervolume: torch.Tensor  # HV of the normalised points
    points: torch.Tensor  # [K, J] reward-weighted log-likelihoods, unnormalised, detached


class HaMModel(nn.Module):
    def __init__(self, heads_model: MultiHeadCausalLM, margin: float = 0.1, length_normalise: bool = True,
                 chunk_size: int | None = None) -> None:
        super().__init__()
        self.heads_model, self.margin, self.length_normalise, self.chunk_size = (
            heads_model, margin, length_normalise, chunk_size)

    def head_logps(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``[K, B]`` log-likelihood of each response under every head (per token with length_normalise),
        through the all-heads fused op: the hidden states are read once, no [K, B, T, V] logits."""
        model = self.heads_model
        targets = shift_labels(labels)
        sums = sequence_logps(model.hidden_states(input_ids, attention_mask), model.heads, targets,
                              bias=model.head_bias, chunk_size=self.chunk_size)
        if not self.length_normalise:
            return sums
        return sums / (targets != -100).sum(1).clamp(min=1).to(sums.dtype)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                rewards: torch.Tensor, directions: torch.Tensor | None = None) -> HaMOutput:
        points = objective_matrix(self.head_logps(input_ids, attention_mask, labels), rewards)
        value = ham_hypervolume(points, self.margin, directions)
        return HaMOutput(-value.to(points.dtype), value.detach(), points.detach())
