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
O(n log n)), d=4 a sweep of the fourth objective over incremental 3-D exclusive volumes (O(n^2)), d=5 a sweep
of the fifth objective over exclusive 4-D volumes against the 4-D front (each a 4-D sweep of the front clipped
to the point), d>=6 WFG-style exclusive volumes against limit sets, slicing the last objective down to d=5;
contributions by sweeps for d=2 and 3 (O(n log n) and near it), by limit sets above; faces by limit sets
over the lower-dimensional algorithms; sets of at most 16 points in 2 or 3 objectives take a stack-only path
(in 3 objectives one O(n^2) sweep gives the value, every contribution and every face at once), and so do those
in 4 to 6 objectives when more than the value is wanted (slabs of the last objective over that sweep,
O(n^(d-1))). The gradient is computed in the forward pass when autograd will need it. On CUDA the small sets in 2
or 3 objectives go to a kernel running one set per thread with the same code (moafast/hv_small_sets.h) --
compiled, not yet run on a GPU; other sets are computed on the host and returned on their device.
Calls that autograd will not differentiate, in eager mode with plain tensors, run the op's kernel without the
torch.library dispatcher (the same outputs, about 35 us less per call); torch.compile, tracing, fake and meta
tensors always see the op ``moafast::hypervolume_outputs``. Under torch.func transforms (``grad``, ``vmap``,
``jacrev``, per-set gradients) the same op runs inside a ``torch.autograd.Function`` with a batching rule, since
the autograd torch.library generates cannot take part in them (pytorch/pytorch#168393).
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
_HOST = torch.device("cpu")

library.define("hypervolume_outputs(Tensor points, Tensor ref, Tensor? mask, bool maximize, bool hv, "
               "bool contributions, bool grad_points, bool grad_ref) -> (Tensor, Tensor, Tensor, Tensor)")


def _check(points, ref, mask) -> tuple[int, int, tuple[int, ...]]:
    """Returns (n, d, batch shape)."""
    plumbing.check_tensor("points", points)
    plumbing.check_tensor("ref", ref)
    if points.dtype not in HV_DTYPES:
        plumbing.check_dtype("points", points, HV_DTYPES)
    shape = points.shape
    if len(shape) < 2:
        raise ValueError(f"points: expected [..., n, d], got shape {list(shape)}")
    *batch, n, d = shape
    batch = tuple(batch)
    if d < 1:
        raise ValueError("points: expected at least one objective (d >= 1), got d = 0")
    if ref.dtype != points.dtype:
        raise TypeError(f"ref: expected the dtype of points ({points.dtype}), got {ref.dtype}")
    if ref.shape != (d,) and ref.shape != batch + (d,):
        raise ValueError(f"ref: expected shape [d] = [{d}] or [..., d] = {list(batch + (d,))}, got {list(ref.shape)}")
    if mask is not None:
        plumbing.check_dtype("mask", mask, (torch.bool,))
        plumbing.check_shape("mask", mask, batch + (n,), "[..., n] like points.shape[:-1]")
    if not (points.is_cpu and ref.is_cpu and (mask is None or mask.is_cpu)):  # the common case needs no more
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


def _is_on(tensor: torch.Tensor, where: torch.device) -> bool:
    """Whether ``tensor`` lives on ``where`` (on the host without building a device object: a small call counts)."""
    return tensor.is_cpu if where is _HOST else tensor.device == where


def _float64_rows(tensor: torch.Tensor, where: torch.device) -> torch.Tensor:
    """``tensor`` itself when it already is contiguous float64 on ``where`` (the kernel reads it in place), else a
    contiguous float64 copy there."""
    if tensor.dtype == torch.float64 and _is_on(tensor, where) and tensor.is_contiguous():
        return tensor
    return tensor.detach().to(where, torch.float64).contiguous()


def _run(points, ref, mask, maximize, hv, contributions, grad_points, grad_ref):
    """The four outputs as float64 kernel results in the dtype and on the device of ``points``; ``None`` for those
    not asked for."""
    n, d, batch = _check(points, ref, mask)
    sets = 1
    for size in batch:
        sets *= size
    device = points.device
    # CUDA runs sets of at most 16 points in 2 or 3 objectives (one thread per set); others go through the host.
    on_cuda = points.is_cuda
    if on_cuda and (bad := _first_non_finite(points, ref, mask)) != -1:
        _raise_non_finite(points, ref, bad)
    where = device if on_cuda and n <= CUDA_MAX_POINTS and d in (2, 3) else _HOST
    flat_points = _float64_rows(points, where)
    flat_ref = _float64_rows(ref, where)
    if mask is not None and (mask.device != where or not mask.is_contiguous()):
        mask = mask.to(where).contiguous()  # bool is one byte of 0 or 1: the kernel reads it as uint8

    float64 = torch.float64  # spelled out per output: a generator over the four costs a small call 2 us
    outputs = (torch.empty(batch, dtype=float64, device=where) if hv else None,
               torch.empty(batch + (n,), dtype=float64, device=where) if contributions else None,
               torch.empty(batch + (n, d), dtype=float64, device=where) if grad_points else None,
               torch.empty(batch + (d,), dtype=float64, device=where) if grad_ref else None)
    if sets and n:
        device_index, stream = (-1, 0) if where is _HOST else plumbing.launch_target(where)
        bad = plumbing.extension().hypervolume(
            flat_points.data_ptr(), flat_ref.data_ptr(), d if ref.dim() > 1 else 0,
            0 if mask is None else mask.data_ptr(), sets, n, d, maximize,
            *[0 if tensor is None else tensor.data_ptr() for tensor in outputs], device_index, stream,
            plumbing.num_threads())
        if bad != -1:
            _raise_non_finite(points, ref, bad)
    else:
        if not bool(torch.isfinite(ref).all()):
            _raise_non_finite(points, ref, -2)
        for tensor in outputs:
            if tensor is not None:
                tensor.zero_()
    if points.dtype == torch.float64 and _is_on(points, where):
        return outputs
    return tuple(None if tensor is None else tensor.to(device, points.dtype) for tensor in outputs)


@torch.library.impl(library, "hypervolume_outputs", "CPU")
@torch.library.impl(library, "hypervolume_outputs", "CUDA")
def _outputs(points, ref, mask, maximize, hv, contributions, grad_points, grad_ref):
    outputs = _run(points, ref, mask, maximize, hv, contributions, grad_points, grad_ref)
    return tuple(points.new_empty(0) if tensor is None else tensor for tensor in outputs)


@torch.library.register_fake("moafast::hypervolume_outputs")
def _outputs_fake(points, ref, mask, maximize, hv, contributions, grad_points, grad_ref):
    n, d, batch = _check(points, ref, mask)
    shapes = (batch, batch + (n,), batch + (n, d), batch + (d,))
    return tuple(points.new_empty(shape if wanted else (0,))
                 for wanted, shape in zip((hv, contributions, grad_points, grad_ref), shapes))


def _setup_context(ctx, inputs, output) -> None:
    points, ref, mask, maximize, hv, _, grad_points, grad_ref = inputs
    ctx.mark_non_differentiable(*output[1:])
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(points, ref, mask, output[2], output[3])
    ctx.maximize, ctx.has_value, ctx.have_grads = maximize, hv, (grad_points, grad_ref)


def _backward(ctx, grad_hv, *_):
    """The faces saved by the forward pass when it computed them, else one more kernel call for the rest."""
    points, ref, mask, grad_points, grad_ref = ctx.saved_tensors
    want_points, want_ref = (wanted and ctx.has_value and grad_hv is not None for wanted in ctx.needs_input_grad[:2])
    missing_points, missing_ref = want_points and not ctx.have_grads[0], want_ref and not ctx.have_grads[1]
    if missing_points or missing_ref:
        _, _, computed_points, computed_ref = torch.ops.moafast.hypervolume_outputs(
            points, ref, mask, ctx.maximize, False, False, missing_points, missing_ref)
        grad_points = computed_points if missing_points else grad_points
        grad_ref = computed_ref if missing_ref else grad_ref
    d_points = grad_hv[..., None, None] * grad_points if want_points else None
    d_ref = None
    if want_ref:
        d_ref = grad_hv[..., None] * grad_ref
        if ref.dim() == 1:
            d_ref = d_ref.reshape(-1, ref.shape[0]).sum(0)
    return d_points, d_ref, None, None, None, None, None, None


torch.library.register_autograd("moafast::hypervolume_outputs", _backward, setup_context=_setup_context)


def _forward_under_transforms(points, ref, mask, maximize: bool, hv: bool, contributions: bool):
    """The forward cannot tell whether the transform will differentiate it: the faces come whenever the value does."""
    return torch.ops.moafast.hypervolume_outputs(points, ref, mask, maximize, hv, contributions, hv, hv)


def _setup_under_transforms(ctx, inputs, output) -> None:
    points, ref, mask, maximize, hv, contributions = inputs
    _setup_context(ctx, (points, ref, mask, maximize, hv, contributions, hv, hv), output)


def _backward_under_transforms(ctx, grad_hv, *_):
    d_points, d_ref = _backward(ctx, grad_hv)[:2]
    return d_points, d_ref, None, None, None, None


def _vmap(info, in_dims, points, ref, mask, maximize: bool, hv: bool, contributions: bool):
    """The op is batched over leading dimensions already: a vmapped call is one call on more sets."""
    size = info.batch_size
    points, mask = plumbing.batch_first(points, in_dims[0], size), plumbing.batch_first(mask, in_dims[2], size)
    sets = points.shape[:-2]  # the vmapped dimension first, then the sets' own leading dimensions
    if in_dims[1] is not None and ref.dim() == 2:  # one ref per vmapped call, shared by its sets
        ref = ref.movedim(in_dims[1], 0)
        ref = ref.view(size, *([1] * (len(sets) - 1)), ref.shape[-1]).expand(*sets, ref.shape[-1])
    elif in_dims[1] is not None or ref.dim() > 1:  # one ref per set
        ref = plumbing.batch_first(ref, in_dims[1], size)
    outputs = _UnderTransforms.apply(points, ref, mask, maximize, hv, contributions)
    return outputs, (0 if hv else None, 0 if contributions else None, 0 if hv else None, 0 if hv else None)


_UnderTransforms = plumbing.function_for_transforms(
    "Hypervolume", _forward_under_transforms, _setup_under_transforms, _backward_under_transforms, _vmap)


def _faces_wanted(points: torch.Tensor, ref: torch.Tensor) -> tuple[bool, bool]:
    """Whether autograd will ask for d/d points and d/d ref: then the forward pass computes them at once."""
    enabled = torch.is_grad_enabled()
    return enabled and points.requires_grad, enabled and ref.requires_grad


def _call(points, ref, mask, maximize, hv, contributions) -> tuple[torch.Tensor | None, ...]:
    """The op, or its kernel directly when nothing will differentiate the call (see
    ``plumbing.kernel_may_run_directly``)."""
    if plumbing.functorch_transform_active():
        return _UnderTransforms.apply(points, ref, mask, maximize, hv, contributions)
    faces = _faces_wanted(points, ref) if hv else (False, False)
    if not any(faces) and plumbing.kernel_may_run_directly(points, ref, mask):
        return _run(points, ref, mask, maximize, hv, contributions, False, False)
    return torch.ops.moafast.hypervolume_outputs(points, ref, mask, maximize, hv, contributions, *faces)


def hypervolume(points: torch.Tensor, ref: torch.Tensor, *, maximize: bool = False,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """Exact hypervolume of each set, ``[...]``, differentiable in ``points`` and ``ref``.

    Args:
        points: ``[..., n, d]`` float64 or float32 (leading dimensions are a batch of sets).
        ref: ``[d]`` (every set) or ``[..., d]`` (one per set), the dtype of ``points``.
        maximize: objectives are maximised (the reference lies below the points).
        mask: ``[..., n]`` bool, ``False`` leaves a point out.

    When autograd will need the gradient, the same kernel pass computes it and the backward only scales it.
    """
    return _call(points, ref, mask, maximize, True, False)[0]


def hypervolume_contributions(points: torch.Tensor, ref: torch.Tensor, *, maximize: bool = False,
                              mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[..., n]`` exclusive contributions ``HV(S) - HV(S without i)`` (not differentiable)."""
    return _call(points, ref, mask, maximize, False, True)[1]


def hypervolume_with_contributions(points: torch.Tensor, ref: torch.Tensor, *, maximize: bool = False,
                                   mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(hypervolume [...], contributions [..., n])`` from one kernel pass; the hypervolume is differentiable as
    in :func:`hypervolume` (its gradient computed in the same pass when autograd will need it). For sets of at
    most 16 points in 3 objectives all three come from one O(n^2) sweep, in 4 to 6 from slabs over it: HaM's
    many small fronts."""
    hv, contributions = _call(points, ref, mask, maximize, True, True)[:2]
    return hv, contributions
