"""Exact hypervolume of batches of point sets, its exclusive contributions and its gradient.

Minimisation by default (``maximize=True`` flips every objective). Per set, a point *takes part* when it is
unmasked and strictly dominates the reference in every objective (``y < r``; ``y > r`` when maximising);
the others contribute nothing and get zero gradient. With S the points that take part:

* ``hypervolume = HV(S)``, the measure of the region between S and ``ref``; 0 for an empty set.
* ``hypervolume_contributions[i] = HV(S) - HV(S without point i)``: 0 for duplicates and for points weakly
  dominated by another.
* The gradient is exact, and where HV has a kink it is the one-sided derivative in the direction in which
  HV grows. ``∂HV/∂y_ik = ∓ (the (d-1)-measure of point i's face normal to objective k)``, for moving
  ``y_ik`` in the improving direction; ties, duplicates, weakly dominated points and points on the
  reference boundary all follow that one rule (a strictly dominated point gets 0; each of two duplicates
  gets the full face, since moving either one alone gains it; a point on the boundary ``y_ik = r_k`` gets
  its face along k). ``∂HV/∂r_k = ±HV_{d-1}`` of the points projected without objective k, for moving
  ``r_k`` away from them (points on that boundary included, as they enter).

Computed in float64 whatever the input dtype (float32 outputs are rounded once at the end). Algorithms
(CPU, one set per OpenMP task): d=2 sort and sweep, d=3 sweep over a balanced-tree staircase (both
O(n log n)), d=4 a sweep of the fourth objective over incremental 3-D exclusive volumes (O(n^2)), d>=5
WFG-style exclusive volumes against limit sets, slicing the last objective down to the 4-D sweep;
contributions by sweeps for d=2 and 3 (O(n log n) and near it), by limit sets above; faces by limit sets
over the lower-dimensional algorithms; sets of at most 16 points in
2 or 3 objectives take a stack-only path that computes every output at once. On CUDA those small sets go to
a kernel running one set per thread with the same code (moafast/hv_small_sets.h) -- compiled, not yet run
on a GPU; larger sets are computed on the host and returned on their device.
NaN/inf policy: non-finite coordinates in unmasked points or in ``ref`` raise ValueError; finite inputs whose
volumes overflow float64 give ``inf`` hypervolume (and NaN contributions and gradients for that set).
"""

from __future__ import annotations

import numpy as np
import torch

from moafast.ops import _plumbing as plumbing
from moafast.ops._library import library

HV_DTYPES = (torch.float32, torch.float64)
CUDA_MAX_POINTS = 16

library.define("hypervolume(Tensor points, Tensor ref, Tensor? mask, bool maximize) -> Tensor")
library.define("hypervolume_contributions(Tensor points, Tensor ref, Tensor? mask, bool maximize) -> Tensor")
library.define("hypervolume_grad(Tensor points, Tensor ref, Tensor? mask, bool maximize) -> (Tensor, Tensor)")


def _check(points, ref, mask) -> tuple[int, int, tuple[int, ...]]:
    """Returns (n, d, batch shape)."""
    plumbing.check_tensor("points", points)
    plumbing.check_tensor("ref", ref)
    plumbing.check_dtype("points", points, HV_DTYPES)
    if points.dim() < 2:
        raise ValueError(f"points: expected [..., n, d], got shape {list(points.shape)}")
    n, d = points.shape[-2:]
    batch = tuple(points.shape[:-2])
    if d < 1:
        raise ValueError("points: expected at least one objective (d >= 1), got d = 0")
    if ref.dtype != points.dtype:
        raise TypeError(f"ref: expected the dtype of points ({points.dtype}), got {ref.dtype}")
    if tuple(ref.shape) not in ((d,), batch + (d,)):
        raise ValueError(f"ref: expected shape [d] = [{d}] or [..., d] = {list(batch + (d,))}, got {list(ref.shape)}")
    if mask is not None:
        plumbing.check_dtype("mask", mask, (torch.bool,))
        plumbing.check_shape("mask", mask, batch + (n,), "[..., n] like points.shape[:-1]")
    plumbing.check_same_device(points=points, ref=ref, mask=mask)
    return n, d, batch


def _raise_non_finite(points, ref, flat_index: int) -> None:
    """``flat_index``: -2 for ``ref``, else the set * n + point the kernel (or the check) found."""
    if flat_index == -2:
        raise ValueError(f"ref: expected finite coordinates, got {ref.tolist()}")
    index = list(np.unravel_index(flat_index, points.shape[:-1])) if points.dim() > 2 else [flat_index]
    raise ValueError(f"points{[int(i) for i in index]}: expected finite coordinates in every unmasked point, got "
                     f"{points[tuple(int(i) for i in index)].tolist()} (mask the point out or clip it)")


def _first_non_finite(points, ref, mask) -> int:
    """The kernel's non-finite report, computed with torch for CUDA tensors (the GPU kernel does not check)."""
    if not bool(torch.isfinite(ref).all()):
        return -2
    finite = torch.isfinite(points).all(-1)
    if mask is not None:
        finite = finite | ~mask
    bad = (~finite).reshape(-1).nonzero()
    return int(bad[0, 0]) if bad.numel() else -1


def _run(points, ref, mask, maximize, *, hv=False, contributions=False, grad=False):
    n, d, batch = _check(points, ref, mask)
    sets = 1
    for size in batch:
        sets *= size
    # CUDA runs sets of at most 16 points in 2 or 3 objectives (one thread per set); others go through the host.
    on_device = points.device.type == "cuda" and n <= CUDA_MAX_POINTS and d in (2, 3)
    if points.device.type == "cuda" and (bad := _first_non_finite(points, ref, mask)) != -1:
        _raise_non_finite(points, ref, bad)
    where = points.device if on_device else torch.device("cpu")
    flat_points = points.detach().to(where, torch.float64).reshape(sets, n, d).contiguous()
    flat_ref = ref.detach().to(where, torch.float64).reshape(-1, d).contiguous()
    flat_mask = None if mask is None else mask.to(where, torch.uint8).reshape(sets, n).contiguous()
    outputs = {
        "hv": torch.zeros(sets, dtype=torch.float64, device=where) if hv else None,
        "contributions": torch.zeros(sets, n, dtype=torch.float64, device=where) if contributions else None,
        "grad_points": torch.zeros(sets, n, d, dtype=torch.float64, device=where) if grad else None,
        "grad_ref": torch.zeros(sets, d, dtype=torch.float64, device=where) if grad else None,
    }
    if sets and n:
        def address(tensor):
            return 0 if tensor is None else tensor.data_ptr()

        device_index, stream = plumbing.launch_target(where)
        bad = plumbing.extension().hypervolume(
            flat_points.data_ptr(), flat_ref.data_ptr(), d if ref.dim() > 1 else 0, address(flat_mask), sets, n, d,
            maximize, address(outputs["hv"]), address(outputs["contributions"]), address(outputs["grad_points"]),
            address(outputs["grad_ref"]), device_index, stream, plumbing.num_threads())
        if bad != -1:
            _raise_non_finite(points, ref, bad)
    elif not bool(torch.isfinite(ref).all()):
        _raise_non_finite(points, ref, -2)

    def back(tensor, shape):
        return None if tensor is None else tensor.reshape(shape).to(points.device, points.dtype)

    return (back(outputs["hv"], batch), back(outputs["contributions"], batch + (n,)),
            back(outputs["grad_points"], batch + (n, d)), back(outputs["grad_ref"], batch + (d,)))


@torch.library.impl(library, "hypervolume", "CPU")
@torch.library.impl(library, "hypervolume", "CUDA")
def _hypervolume(points, ref, mask, maximize):
    return _run(points, ref, mask, maximize, hv=True)[0]


@torch.library.impl(library, "hypervolume_contributions", "CPU")
@torch.library.impl(library, "hypervolume_contributions", "CUDA")
def _contributions(points, ref, mask, maximize):
    return _run(points, ref, mask, maximize, contributions=True)[1]


@torch.library.impl(library, "hypervolume_grad", "CPU")
@torch.library.impl(library, "hypervolume_grad", "CUDA")
def _grad(points, ref, mask, maximize):
    _, _, grad_points, grad_ref = _run(points, ref, mask, maximize, grad=True)
    return grad_points, grad_ref


@torch.library.register_fake("moafast::hypervolume")
def _hypervolume_fake(points, ref, mask, maximize):
    _, _, batch = _check(points, ref, mask)
    return points.new_empty(batch)


@torch.library.register_fake("moafast::hypervolume_contributions")
def _contributions_fake(points, ref, mask, maximize):
    _, _, batch = _check(points, ref, mask)
    return points.new_empty(points.shape[:-1])


@torch.library.register_fake("moafast::hypervolume_grad")
def _grad_fake(points, ref, mask, maximize):
    _, d, batch = _check(points, ref, mask)
    return torch.empty_like(points), points.new_empty(batch + (d,))


def _setup_context(ctx, inputs, output) -> None:
    points, ref, mask, maximize = inputs
    ctx.save_for_backward(points, ref, mask)
    ctx.maximize = maximize


def _backward(ctx, grad_hv):
    points, ref, mask = ctx.saved_tensors
    grad_points, grad_ref = torch.ops.moafast.hypervolume_grad(points, ref, mask, ctx.maximize)
    grad_points = grad_hv[..., None, None] * grad_points
    grad_ref = grad_hv[..., None] * grad_ref
    if ref.dim() == 1:
        grad_ref = grad_ref.reshape(-1, ref.shape[0]).sum(0)
    return grad_points, grad_ref, None, None


torch.library.register_autograd("moafast::hypervolume", _backward, setup_context=_setup_context)


def hypervolume(points: torch.Tensor, ref: torch.Tensor, *, maximize: bool = False,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """Exact hypervolume of each set, ``[...]``, differentiable in ``points`` and ``ref``.

    Args:
        points: ``[..., n, d]`` float64 or float32 (leading dimensions are a batch of sets).
        ref: ``[d]`` (every set) or ``[..., d]`` (one per set), the dtype of ``points``.
        maximize: objectives are maximised (the reference lies below the points).
        mask: ``[..., n]`` bool, ``False`` leaves a point out.
    """
    return torch.ops.moafast.hypervolume(points, ref, mask, maximize)


def hypervolume_contributions(points: torch.Tensor, ref: torch.Tensor, *, maximize: bool = False,
                              mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[..., n]`` exclusive contributions ``HV(S) - HV(S without i)`` (not differentiable)."""
    return torch.ops.moafast.hypervolume_contributions(points, ref, mask, maximize)
