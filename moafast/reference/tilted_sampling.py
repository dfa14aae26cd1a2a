"""Plain-PyTorch float64 references for the tilted sampler: sort-based filters, the same Philox draw.

Definitions are those of :mod:`moafast.ops.tilted_sampling`; these are written independently of the kernel
(full sorts and cumulative sums instead of thresholds found without sorting).
"""

from __future__ import annotations

import math

import torch

_MASK32 = 0xFFFFFFFF


def philox_uniform(seed: int, offset: int, stream: int) -> float:
    """Philox4x32-10 at counter (offset, stream) under key seed, as 53 bits in [0, 1) (pure Python)."""
    seed, offset, stream = seed & (2**64 - 1), offset & (2**64 - 1), stream & (2**64 - 1)
    c = [offset & _MASK32, offset >> 32, stream & _MASK32, stream >> 32]
    k0, k1 = seed & _MASK32, seed >> 32
    for _ in range(10):
        product0, product1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [((product1 >> 32) ^ c[1] ^ k0) & _MASK32, product1 & _MASK32,
             ((product0 >> 32) ^ c[3] ^ k1) & _MASK32, product0 & _MASK32]
        k0, k1 = (k0 + 0x9E3779B9) & _MASK32, (k1 + 0xBB67AE85) & _MASK32
    bits = ((c[0] << 21) ^ (c[1] >> 11)) & (2**53 - 1)
    return bits / 2.0**53


def tilted_logits(logits: torch.Tensor, values: torch.Tensor, weights: torch.Tensor, beta: float | torch.Tensor,
                  *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0,
                  candidates: torch.Tensor | None = None, temperature_before_tilt: bool = False) -> torch.Tensor:
    """float64 ``[B, width]`` processed logits, filtered entries at -inf."""
    logits = logits.double()
    if candidates is not None:
        logits = logits.gather(1, candidates.long())
    beta = beta.double()[:, None] if isinstance(beta, torch.Tensor) else float(beta)
    tilt = beta * torch.einsum("bk,kbv->bv", weights.double(), values.double())
    t = logits / temperature + tilt if temperature_before_tilt else (logits + tilt) / temperature
    negative_infinity = torch.tensor(float("-inf"), dtype=torch.float64)
    if 0 < top_k < t.shape[1]:
        kth = t.topk(top_k, dim=1).values[:, -1:]
        t = torch.where(t >= kth, t, negative_infinity)
    if top_p < 1.0:
        ordered = t.sort(dim=1, descending=True).values
        probabilities = ordered.softmax(dim=1)
        reached = probabilities.cumsum(dim=1) >= top_p
        reached[:, -1] = True
        first = reached.int().argmax(dim=1, keepdim=True)
        tau = ordered.gather(1, first)
        t = torch.where(t >= tau, t, negative_infinity)
    if min_p > 0.0:
        floor = t.max(dim=1, keepdim=True).values + math.log(min_p)
        t = torch.where(t >= floor, t, negative_infinity)
    return t


def tilted_sample(logits: torch.Tensor, values: torch.Tensor, weights: torch.Tensor, beta: float | torch.Tensor,
                  *, seeds: list[int], offsets: list[int], streams: list[int], temperature: float = 1.0,
                  candidates: torch.Tensor | None = None, temperature_before_tilt: bool = False,
                  **filters) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tokens, tilted log-probs, base log-probs) in float64, drawing row b with its own Philox key."""
    t = tilted_logits(logits, values, weights, beta, temperature=temperature, candidates=candidates,
                      temperature_before_tilt=temperature_before_tilt, **filters)
    masses = (t - t.max(dim=1, keepdim=True).values).exp()
    cumulative = masses.cumsum(dim=1)
    log_probs = t.log_softmax(dim=1)
    base = (logits.double() / temperature).log_softmax(dim=1)
    tokens, tilted, base_out = [], [], []
    for b in range(t.shape[0]):
        target = philox_uniform(seeds[b], offsets[b], streams[b]) * float(cumulative[b, -1])
        index = int(torch.searchsorted(cumulative[b], torch.tensor([target], dtype=torch.float64), right=True))
        index = min(index, t.shape[1] - 1)
        token = int(candidates[b, index]) if candidates is not None else index
        tokens.append(token)
        tilted.append(float(log_probs[b, index]))
        base_out.append(float(base[b, token]))
    return torch.tensor(tokens), torch.tensor(tilted, dtype=torch.float64), torch.tensor(base_out, dtype=torch.float64)


def topk_with_logsumexp(logits: torch.Tensor, k: int, *,
                        temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top k of logits / T (ties: lower token id first, by a stable sort) and the full logsumexp."""
    scaled = logits.double() / temperature
    ordered = scaled.sort(dim=1, descending=True, stable=True)
    return ordered.values[:, :k], ordered.indices[:, :k], scaled.logsumexp(dim=1)
