"""Arguments of the sampling ops, prepared and checked in one place: logits, temperature, the per-request
coefficients ``beta * w`` and the Philox keys (seed, step, stream) of every request."""

from __future__ import annotations

import math

import torch

from moafast.ops import _plumbing as plumbing

SAMPLING_DTYPES = plumbing.FLOAT_DTYPES
_INT64_MASK = (1 << 64) - 1


def check_logits(logits: torch.Tensor) -> tuple[int, int]:
    plumbing.check_tensor("logits", logits)
    plumbing.check_ndim("logits", logits, 2, "[B, V]")
    plumbing.check_dtype("logits", logits, SAMPLING_DTYPES)
    if logits.shape[1] == 0:
        raise ValueError("logits: expected V = logits.shape[1] >= 1, got an empty vocabulary")
    return logits.shape[0], logits.shape[1]


def check_temperature(temperature: float) -> None:
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature: expected a finite value > 0 (use top_k=1 for greedy decoding), got "
                         f"{temperature}")


def coefficients_of(weights: torch.Tensor, beta: float | torch.Tensor, batch: int, temperature: float,
                  temperature_before_tilt: bool) -> torch.Tensor:
    """``c[b, k] = beta[b] * w[b, k]``, divided by T unless the temperature applies before the tilt."""
    plumbing.check_tensor("weights", weights)
    plumbing.check_dtype("weights", weights, SAMPLING_DTYPES)
    plumbing.check_ndim("weights", weights, 2, "[B, K]")
    if weights.shape[0] != batch:
        raise ValueError(f"weights: expected shape [B, K] with B = logits.shape[0] = {batch}, got "
                         f"{list(weights.shape)}")
    if isinstance(beta, torch.Tensor):
        plumbing.check_dtype("beta", beta, SAMPLING_DTYPES)
        plumbing.check_shape("beta", beta, (batch,), "[B] with B = logits.shape[0]")
        beta = beta[:, None]
    elif not (isinstance(beta, (int, float)) and math.isfinite(beta)):
        raise ValueError(f"beta: expected a finite float or a [B] tensor, got {beta!r}")
    # In place on a float64 copy (each out-of-place step costs a small call a few microseconds); a float32 beta
    # is widened by the multiplication itself.
    coefficients = weights.to(torch.float64, copy=True).mul_(beta)
    return coefficients if temperature_before_tilt or temperature == 1.0 else coefficients.mul_(1.0 / temperature)


def random_keys(batch: int, seed: int | torch.Tensor | None, offset: int | torch.Tensor,
          generator: torch.Generator | None, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(seeds, offsets, streams), each [B] int64."""
    if seed is not None and generator is not None:
        raise ValueError("seed and generator: pass one of them, not both")
    if seed is None:
        seed = int(torch.randint(-(2**63), 2**63 - 1, (1,), generator=generator, dtype=torch.int64))
    if isinstance(seed, torch.Tensor):
        plumbing.check_dtype("seed", seed, plumbing.INDEX_DTYPES)
        plumbing.check_shape("seed", seed, (batch,), "[B] per-request seeds with B = logits.shape[0]")
        seeds = seed.to(device, torch.int64)
        streams = torch.zeros(batch, dtype=torch.int64, device=device)
    elif isinstance(seed, int):
        masked = seed & _INT64_MASK
        seeds = torch.full((batch,), masked - (1 << 64) if masked >= 1 << 63 else masked, dtype=torch.int64,
                           device=device)
        streams = torch.arange(batch, dtype=torch.int64, device=device)
    else:
        raise TypeError(f"seed: expected an int, a [B] integer tensor or None, got {type(seed).__name__}")
    if isinstance(offset, torch.Tensor):
        plumbing.check_dtype("offset", offset, plumbing.INDEX_DTYPES)
        plumbing.check_shape("offset", offset, (batch,), "[B] per-request steps with B = logits.shape[0]")
        offsets = offset.to(device, torch.int64)
    elif isinstance(offset, int):
        if offset < 0:
            raise ValueError(f"offset: expected a step >= 0, got {offset}")
        offsets = torch.full((batch,), offset, dtype=torch.int64, device=device)
    else:
        raise TypeError(f"offset: expected an int or a [B] integer tensor, got {type(offset).__name__}")
    return seeds, offsets, streams
