"""MAVIS decoding: at every step the base policy's top-k candidates are scored by each objective's value model
(one forward per value model, shared prefix cache) and one token is drawn from
``pi(a | s) ∝ exp(l_a / T + beta * sum_i w_i Q_i(s, a))`` over the k candidates (MAVIS's order: temperature
before the tilt), with the fused sampler; the log-ratio to the base policy is tracked per request."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from moafast.generation import TiltedGeneration, generate
from moafast.methods.mavis.value_model import CandidateScorer, ValueModel


def mavis_generate(policy: torch.nn.Module, value_models: Sequence[ValueModel], input_ids: torch.Tensor, *,
                   weights: torch.Tensor, beta: float | torch.Tensor = 1.0, attention_mask: torch.Tensor | None = None,
                   top_k: int = 40, temperature: float = 1.0, max_new_tokens: int = 32,
                   seed: int | torch.Tensor | None = None, eos_token_id: int | None = None,
                   pad_token_id: int | None = None, min_new_tokens: int = 0,
                   progress: bool = False) -> TiltedGeneration:
    """Samples from the MAVIS policy.

    Args:
        policy: the base causal LM.
        value_models: one per objective, sharing the policy's tokenizer.
        input_ids: ``[B, T]`` left-padded prompts (``attention_mask`` 1 on tokens).
        weights: ``[B, K]`` per-request objective weights (MAVIS uses the simplex; they are used as given).
        beta: the tilt strength, a float or ``[B]``.
        min_new_tokens: steps during which EOS cannot be drawn (MAVIS's ``force_no_eos_on_first_token`` is 1).
    """
    if weights.dim() != 2 or weights.shape[1] != len(value_models):
        raise ValueError(f"weights: expected shape [B, {len(value_models)}] (one weight per value model), got "
                         f"{list(weights.shape)}")
    scorers = [CandidateScorer(model) for model in value_models]

    def values_fn(sequences: torch.Tensor, mask: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        return torch.stack([scorer(sequences, mask, candidates).float() for scorer in scorers])

    return generate(policy, input_ids, attention_mask=attention_mask, weights=weights, beta=beta,
                    values_fn=values_fn, candidates_k=top_k, max_new_tokens=max_new_tokens, temperature=temperature,
                    temperature_before_tilt=True, seed=seed, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                    min_new_tokens=min_new_tokens, progress=progress)
