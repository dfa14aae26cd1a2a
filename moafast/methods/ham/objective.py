"""HaM's objective: K heads' reward-weighted log-likelihoods, normalised, and their hypervolume.

``L[k, j] = mean_b r[b, j] · logp[k, b]``; per objective, over the heads of the batch,
``L̄[k, j] = (L[k, j] - min_k L[:, j]) / scale_j + margin`` with ``scale_j = max(range_j, 0.01 |mean_j| +
1e-12)`` (the floor keeps near-identical heads, as at initialisation, from blowing the gradient up) and the
min and scale detached, so every point dominates the reference 0. The loss is ``-HV(L̄)``
(maximisation): exact through :func:`moafast.ops.hypervolume` (its gradient is each head's face measure),
or the random-scalarisation estimate ``HV ≈ c_J · mean_λ max_k min_j (L̄[k, j] / λ_j)^J`` with λ uniform
on the positive unit sphere and ``c_J = π^{J/2} / (2^J Γ(J/2 + 1))`` (Golovin & Zhang 2020).
"""

from __future__ import annotations

import math

import torch

from moafast.ops import hypervolume

RELATIVE_SCALE_FLOOR = 0.01


def objective_matrix(logps: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """``[K, J]`` = ``logps[K, B] @ rewards[B, J] / B``."""
    return logps @ rewards.to(logps.dtype) / logps.shape[1]


def normalise(points: torch.Tensor, margin: float) -> torch.Tensor:
    """``[K, J]`` into ``[margin, 1 + margin]`` per objective, with detached shift and scale."""
    low = points.detach().amin(0)
    spread = points.detach().amax(0) - low
    scale = torch.maximum(spread, RELATIVE_SCALE_FLOOR * points.detach().mean(0).abs() + 1e-12)
    return (points - low) / scale + margin


def scalarized_hypervolume(points: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Random-scalarisation estimate of the hypervolume of ``points[K, J]`` (maximisation, reference 0) with
    ``directions[n, J]`` on the positive unit sphere; differentiable (each direction feeds one (k, j))."""
    dims = points.shape[1]
    constant = math.pi ** (dims / 2) / (2**dims * math.gamma(dims / 2 + 1))
    ratios = points.clamp(min=0)[None, :, :] / directions[:, None, :]  # [n, K, J]
    return constant * ratios.amin(-1).amax(-1).pow(dims).mean()


def random_directions(count: int, dims: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """``[count, dims]`` uniform on the positive part of the unit sphere."""
    samples = torch.randn(count, dims, generator=generator, dtype=torch.float64).abs() + 1e-12
    return (samples / samples.norm(dim=1, keepdim=True)).to(dtype)


def ham_hypervolume(points: torch.Tensor, margin: float, directions: torch.Tensor | None = None) -> torch.Tensor:
    """Hypervolume of the normalised points: exact, or estimated with ``directions``."""
    normalised = normalise(points, margin)
    if directions is None:
        return hypervolume(normalised.to(torch.float64), torch.zeros(points.shape[1], dtype=torch.float64,
                                                                     device=points.device), maximize=True)
    return scalarized_hypervolume(normalised, directions.to(normalised))
