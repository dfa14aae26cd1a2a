"""``moafast.generate``: a KV-cache decoding loop for any causal LM that samples every step with the fused
tilted sampler, with per-request objective weights, beta and seeds in one batch.

Each step: the model's last-position logits ``l`` ``[B, V]``; in candidate mode the top ``candidates_k`` of
``l / T`` and the full logsumexp (one read of ``l``); the objectives' scores from ``values_fn``; then
:func:`moafast.ops.tilted_sample` (tilt, temperature, top-k, top-p, min-p, draw). Request b's token at step s
is drawn with Philox key ``seed`` (stream b) or ``seed[b]``, counter s: a request's output does not depend on the
requests batched with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from moafast._hf_cache import cache_keyword, positions_from_mask, returned_cache
from moafast.ops import tilted_sample, topk_with_logsumexp

# values_fn(sequences [B, T], attention_mask [B, T] or None, candidates [B, k] or None) -> [K, B, V] or [K, B, k]
ValuesFn = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor | None], torch.Tensor]


@dataclass
class TiltedGeneration:
    """``sequences`` ``[B, T + new]`` (prompt, then the new tokens; ``pad_token_id`` after a row's EOS);
    ``tilted_logprobs`` / ``base_logprobs`` ``[B, new]``: each new token's log-probability under the tilted,
    filtered distribution and under ``log_softmax(l / T)`` (0 after EOS); ``new_tokens`` ``[B]`` (EOS included)."""

    sequences: torch.Tensor
    tilted_logprobs: torch.Tensor
    base_logprobs: torch.Tensor
    new_tokens: torch.Tensor

    @property
    def log_ratio(self) -> torch.Tensor:
        """``[B]``: ``sum_t log pi_tilted(a_t) - log pi_base(a_t)``, the sampled estimate of KL(tilted || base)."""
        return (self.tilted_logprobs - self.base_logprobs).sum(-1)


def _check_generate_inputs(input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                           weights: torch.Tensor | None, values_fn: ValuesFn | None,
                           candidates_k: int | None, max_new_tokens: int) -> None:
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.dtype != torch.long:
        raise ValueError("input_ids: expected a [B, T] int64 tensor of (left-padded) prompts")
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask: expected shape {list(input_ids.shape)} like input_ids, got "
                         f"{list(attention_mask.shape)}")
    if (values_fn is None) != (weights is None):
        raise ValueError("values_fn and weights: pass both (a tilted decode) or neither (plain sampling)")
    if weights is not None and (weights.dim() != 2 or weights.shape[0] != input_ids.shape[0]):
        raise ValueError(f"weights: expected shape [B, K] with B = {input_ids.shape[0]}, got {list(weights.shape)}")
    if candidates_k is not None and candidates_k < 1:
        raise ValueError(f"candidates_k: expected None (dense) or >= 1, got {candidates_k}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: expected >= 1, got {max_new_tokens}")


@torch.no_grad()
def generate(model: torch.nn.Module, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
             weights: torch.Tensor | None = None, beta: float | torch.Tensor = 1.0,
             values_fn: ValuesFn | None = None, candidates_k: int | None = None, max_new_tokens: int = 32,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0,
             temperature_before_tilt: bool = False, seed: int | torch.Tensor | None = None,
             eos_token_id: int | None = None, pad_token_id: int | None = None, min_new_tokens: int = 0,
             progress: bool = False) -> TiltedGeneration:
    """Samples up to ``max_new_tokens`` per request from ``model`` tilted by ``values_fn``.

    Args:
        model: any HF causal LM (``model(input_ids, attention_mask, position_ids, cache or past_key_values,
            use_cache=True)`` returning ``logits`` and the cache).
        input_ids: ``[B, T]`` prompts, left-padded, with ``attention_mask`` (1 = token).
        weights: ``[B, K]`` per-request objective weights (used as given); ``beta`` a float or ``[B]``.
        values_fn: the objectives' scores of the next token, ``[K, B, V]`` (dense) or, with ``candidates_k``,
            ``[K, B, k]`` for the top-k candidates of the base model (MAVIS). None: plain fused sampling.
        seed: an int (request b uses stream b), ``[B]`` per-request seeds, or None (drawn from torch's generator).
        eos_token_id, pad_token_id: default to the model config's.
        min_new_tokens: EOS gets logit -inf for this many first steps (MAVIS's "no EOS on the first token" is 1).
    """
    _check_generate_inputs(input_ids, attention_mask, weights, values_fn, candidates_k, max_new_tokens)
    config = getattr(model, "config", None)
    eos_token_id = eos_token_id if eos_token_id is not None else getattr(config, "eos_token_id", None)
    if isinstance(eos_token_id, (list, tuple)):
        eos_token_id = eos_token_id[0]
    pad_token_id = pad_token_id if pad_token_id is not None else getattr(config, "pad_token_id", None)
    if pad_token_id is None:
        pad_token_id = eos_token_id if eos_token_id is not None else 0
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)))
    batch, device = input_ids.shape[0], input_ids.device
    attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(input_ids.dtype)
    if weights is None:
        weights = torch.zeros(batch, 0, device=device)
    sequences, past, cache_argument = input_ids, None, cache_keyword(model)
    step_ids, step_positions = input_ids, positions_from_mask(attention_mask)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    new_tokens = torch.zeros(batch, dtype=torch.long, device=device)
    tilted_columns, base_columns = [], []
    steps = range(max_new_tokens)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="generate", unit="tok")
    for step in steps:
        outputs = model(input_ids=step_ids, attention_mask=attention_mask, position_ids=step_positions,
                        use_cache=True, **{cache_argument: past})
        past = returned_cache(outputs)
        logits = outputs.logits[:, -1, :]
        if step < min_new_tokens and eos_token_id is not None and 0 <= eos_token_id < logits.shape[-1]:
            logits = logits.clone()
            logits[:, eos_token_id] = float("-inf")
        candidates = lse = None
        if candidates_k is not None:
            _, candidates, lse = topk_with_logsumexp(logits, min(candidates_k, logits.shape[-1]),
                                                     temperature=temperature)
        if values_fn is not None:
            values = values_fn(sequences, attention_mask, candidates)
        else:
            width = logits.shape[-1] if candidates is None else candidates.shape[1]
            values = logits.new_zeros(0, batch, width)
        tokens, tilted, base = tilted_sample(
            logits, values.to(device), weights, beta, temperature=temperature, top_k=top_k, top_p=top_p,
            min_p=min_p, candidates=candidates, temperature_before_tilt=temperature_before_tilt, seed=seed,
            offset=step, return_logprobs=True, base_logsumexp=lse)
        tokens = torch.where(finished, torch.full_like(tokens, pad_token_id), tokens)
        tilted_columns.append(tilted.float().masked_fill(finished, 0.0))
        base_columns.append(base.float().masked_fill(finished, 0.0))
        new_tokens += (~finished).long()
        sequences = torch.cat([sequences, tokens[:, None]], dim=1)
        attention_mask = torch.cat([attention_mask, (~finished).to(attention_mask.dtype)[:, None]], dim=1)
        if eos_token_id is not None:
            finished |= tokens == eos_token_id
        if bool(finished.all()):
            break
        step_ids = tokens[:, None]
        step_positions = positions_from_mask(attention_mask)[:, -1:]
    return TiltedGeneration(sequences, torch.stack(tilted_columns, 1), torch.stack(base_columns, 1), new_tokens)
