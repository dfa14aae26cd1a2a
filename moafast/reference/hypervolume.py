"""Plain-PyTorch hypervolume by inclusion-exclusion: the definition the kernels are tested against.

``HV(S) = Σ_{∅≠T⊆S} (-1)^{|T|+1} Π_k (r_k - max_{i∈T} y_ik)`` over the points that strictly dominate the
reference (minimisation; ``maximize`` negates). Exact and differentiable by autograd away from ties;
``O(2^n)``, so for n <= 14.
"""

from __future__ import annotations

import itertools

import torch

MAX_POINTS = 14


def hypervolume(points: torch.Tensor, ref: torch.Tensor, *, maximize: bool = False,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[...]`` hypervolume of ``points[..., n, d]`` (n <= 14) against ``ref[d]`` or ``ref[..., d]``."""
    n, d = points.shape[-2:]
    if n > MAX_POINTS:
        raise ValueError(f"points: the inclusion-exclusion reference takes n <= {MAX_POINTS}, got n = {n}")
    sign = -1.0 if maximize else 1.0
    y, r = sign * points, sign * ref.expand(*points.shape[:-2], d)
    takes_part = (y < r[..., None, :]).all(-1)
    if mask is not None:
        takes_part = takes_part & mask
    total = points.new_zeros(points.shape[:-2])
    for size in range(1, n + 1):
        for subset in itertools.combinations(range(n), size):
            members = list(subset)
            corner = y[..., members, :].amax(-2)
            volume = (r - corner).clamp(min=0).prod(-1) * takes_part[..., members].all(-1)
            total = total + (volume if size % 2 else -volume)
    return total


def hypervolume_contributions(points: torch.Tensor, ref: torch.Tensor, *, maximize: bool = False,
                              mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[..., n]``: ``HV(S) - HV(S without i)``."""
    n = points.shape[-2]
    keep = torch.ones(points.shape[:-1], dtype=torch.bool, device=points.device) if mask is None else mask
    whole = hypervolume(points, ref, maximize=maximize, mask=keep)
    out = []
    for i in range(n):
        without = keep.clone()
        without[..., i] = False
        out.append(whole - hypervolume(points, ref, maximize=maximize, mask=without))
    return torch.stack(out, -1)
