"""An HF ``LogitsProcessor`` that adds a weighted sum of objective scores to the logits, so that
``model.generate(..., logits_processor=LogitsProcessorList([MultiRewardTiltProcessor(...)]))`` decodes from
``l + beta * sum_k w[b, k] * Q[k, b, :]``; HF's own temperature, top-k, top-p and min-p warpers run after it
(HF's order: processors before temperature)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import LogitsProcessor

from moafast.ops import tilted_logits, topk_with_logsumexp

# values_fn(input_ids [B, T], candidates [B, k] or None) -> [K, B, V] (dense) or [K, B, k]
ProcessorValuesFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


class MultiRewardTiltProcessor(LogitsProcessor):
    """Tilts the scores by per-request objective weights.

    Args:
        weights: ``[B, K]``, one row per sequence that ``generate`` decodes (repeat rows for
            ``num_return_sequences`` or beams); used as given.
        values_fn: ``values_fn(input_ids, candidates)`` -> ``[K, B, V]`` or, with ``candidates_k``, ``[K, B, k]``
            scores for the top-k candidate tokens (every other token is then masked to ``-inf``).
        beta: a float or ``[B]``.
        candidates_k: None (dense) or the number of base-model candidates scored per step.
    """

    def __init__(self, weights: torch.Tensor, values_fn: ProcessorValuesFn, beta: float | torch.Tensor = 1.0,
                 candidates_k: int | None = None) -> None:
        if weights.dim() != 2:
            raise ValueError(f"weights: expected shape [B, K], got {list(weights.shape)}")
        if candidates_k is not None and candidates_k < 1:
            raise ValueError(f"candidates_k: expected None (dense) or >= 1, got {candidates_k}")
        self.weights, self.values_fn, self.beta, self.candidates_k = weights, values_fn, beta, candidates_k

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != self.weights.shape[0]:
            raise ValueError(f"weights: {self.weights.shape[0]} rows for {scores.shape[0]} sequences; give one row "
                             "per decoded sequence (repeat rows for num_return_sequences or beams)")
        weights = self.weights.to(scores.device)
        if self.candidates_k is None:
            values = self.values_fn(input_ids, None).to(scores.device, scores.dtype)
            return tilted_logits(scores, values, weights, self.beta).to(scores.dtype)
        _, candidates, _ = topk_with_logsumexp(scores, min(self.candidates_k, scores.shape[-1]))
        values = self.values_fn(input_ids, candidates)
        tilted = tilted_logits(scores, values, weights, self.beta, candidates=candidates)
        return torch.full_like(scores, float("-inf")).scatter(1, candidates, tilted.to(scores.dtype))
