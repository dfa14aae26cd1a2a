"""`logprobs_from_logits`: fused log-softmax + gather, and its one-pass backward.

NaN/inf policy (per row):
  * ``-inf`` logits carry zero probability; a target whose logit is ``-inf`` gets ``logp = -inf``.
  * A row whose logits are all ``-inf`` has ``lse = -inf``, ``logp = -inf`` and zero gradient.
  * NaN or ``+inf`` anywhere in a row gives NaN ``lse`` and ``logp`` for that row (and NaN gradient).
  * Rows whose target equals ``ignore_index`` give ``logp = lse = 0`` and zero gradient; their
    logits are never read.
  * A target outside ``[0, V)`` that is not ``ignore_index`` raises IndexError on the CPU; on CUDA
    (where checking would cost a device sync) that row's ``logp`` and gradient are NaN.
"""

from __future__ import annotations

import torch

from moafast.ops import _plumbing as plumbing
from moafast.ops._library import library

library.define("logprobs_from_logits(Tensor logits, Tensor targets, int ignore_index=-100) -> (Tensor, Tensor)")
library.define(
    "logprobs_from_logits_backward(Tensor grad_logp, Tensor? grad_lse, Tensor logits, Tensor targets, "
    "Tensor lse, int ignore_index) -> Tensor"
)


def _check_inputs(logits: torch.Tensor, targets: torch.Tensor) -> torch.device:
    plumbing.check_tensor("logits", logits)
    plumbing.check_tensor("targets", targets)
    plumbing.check_ndim("logits", logits, 2, "[N, V]")
    plumbing.check_dtype("logits", logits, plumbing.FLOAT_DTYPES)
    plumbing.check_dtype("targets", targets, plumbing.INDEX_DTYPES)
    plumbing.check_shape("targets", targets, (logits.shape[0],), "[N] with N = logits.shape[0]")
    if logits.shape[1] == 0:
        raise ValueError("logits: expected V = logits.shape[1] >= 1, got an empty vocabulary")
    return plumbing.check_same_device(logits=logits, targets=targets)


def _check_row_vector(name: str, tensor: torch.Tensor, logits: torch.Tensor) -> None:
    plumbing.check_dtype(name, tensor, (plumbing.accumulation_dtype(logits.dtype),))
    plumbing.check_shape(name, tensor, (logits.shape[0],), "[N] with N = logits.shape[0]")


@torch.library.impl(library, "logprobs_from_logits", "CPU")
@torch.library.impl(library, "logprobs_from_logits", "CUDA")
def _forward(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> tuple[torch.Tensor, torch.Tensor]:
    device = _check_inputs(logits, targets)
    logits = plumbing.unit_stride_rows(logits)
    targets = targets.to(torch.int64)
    rows, vocab = logits.shape
    accumulation = plumbing.accumulation_dtype(logits.dtype)
    logp = torch.empty(rows, dtype=accumulation, device=device)
    lse = torch.empty(rows, dtype=accumulation, device=device)
    if rows == 0:
        return logp, lse
    device_index, stream = plumbing.launch_target(device)
    plumbing.extension().logprobs_forward(
        logits.data_ptr(), rows, vocab, logits.stride(0), targets.data_ptr(), targets.stride(0), ignore_index,
        logp.data_ptr(), lse.data_ptr(), plumbing.dtype_code(logits.dtype), device_index, stream,
        plumbing.num_threads(),
    )
    return logp, lse


@torch.library.impl(library, "logprobs_from_logits_backward", "CPU")
@torch.library.impl(library, "logprobs_from_logits_backward", "CUDA")
def _backward(
    grad_logp: torch.Tensor,
    grad_lse: torch.Tensor | None,
    logits: torch.Tensor,
    targets: torch.Tensor,
    lse: torch.Tensor,
    ignore_index: int,
) -> torch.Tensor:
    device = _check_inputs(logits, targets)
    _check_row_vector("grad_logp", grad_logp, logits)
    _check_row_vector("lse", lse, logits)
    if grad_lse is not None:
        _check_row_vector("grad_lse", grad_lse, logits)
    plumbing.check_same_device(logits=logits, grad_logp=grad_logp, grad_lse=grad_lse, lse=lse)
    logits = plumbing.unit_stride_rows(logits)
    targets = targets.to(torch.int64)
    lse = lse.contiguous()
    rows, vocab = logits.shape
    grad_logits = torch.empty((rows, vocab), dtype=logits.dtype, device=device)
    if rows == 0:
        return grad_logits
    device_index, stream = plumbing.launch_target(device)
    plumbing.extension().logprobs_backward(
        logits.data_ptr(), rows, vocab, logits.stride(0), targets.data_ptr(), targets.stride(0), ignore_index,
        lse.data_ptr(), grad_logp.data_ptr(), grad_logp.stride(0),
        0 if grad_lse is None else grad_lse.data_ptr(), 0 if grad_lse is None else grad_lse.stride(0),
        grad_logits.data_ptr(), plumbing.dtype_code(logits.dtype), device_index, stream, plumbing.num_threads(),
    )
    return grad_logits


@torch.library.register_fake("moafast::logprobs_from_logits")
def _forward_fake(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100):
    _check_inputs(logits, targets)
    accumulation = plumbing.accumulation_dtype(logits.dtype)
    return logits.new_empty(logits.shape[0], dtype=accumulation), logits.new_empty(logits.shape[0], dtype=accumulation)


@torch.library.register_fake("moafast::logprobs_from_logits_backward")
def _backward_fake(grad_logp, grad_lse, logits, targets, lse, ignore_index):
    _check_inputs(logits, targets)
    _check_row_vector("grad_logp", grad_logp, logits)
    _check_row_vector("lse", lse, logits)
    return torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)


def _setup_context(ctx, inputs, output) -> None:
    logits, targets, ignore_index = inputs
    _, lse = output
    ctx.save_for_backward(logits, targets, lse)
    ctx.ignore_index = ignore_index


def _autograd_backward(ctx, grad_logp: torch.Tensor | None, grad_lse: torch.Tensor | None):
    logits, targets, lse = ctx.saved_tensors
    if grad_logp is None:
        grad_logp = torch.zeros_like(lse)
    grad_logits = torch.ops.moafast.logprobs_from_logits_backward(
        grad_logp, grad_lse, logits, targets, lse, ctx.ignore_index
    )
    return grad_logits, None, None


torch.library.register_autograd(
    "moafast::logprobs_from_logits", _autograd_backward, setup_context=_setup_context
)


@torch.library.register_vmap("moafast::logprobs_from_logits_backward")
def _backward_vmap(info, in_dims, grad_logp, grad_lse, logits, targets, lse, ignore_index):
    """The backward is batched over rows already: a vmapped call is one call on more rows."""
    size = info.batch_size
    grad_logp, grad_lse, logits, targets, lse = (plumbing.batch_first(tensor, dim, size) for tensor, dim
                                                 in zip((grad_logp, grad_lse, logits, targets, lse), in_dims))
    vocab = logits.shape[-1]
    grad_logits = torch.ops.moafast.logprobs_from_logits_backward(
        grad_logp.reshape(-1), None if grad_lse is None else grad_lse.reshape(-1), logits.reshape(-1, vocab),
        targets.reshape(-1), lse.reshape(-1), ignore_index)
    return grad_logits.view(size, -1, vocab), 0


def _vmap(info, in_dims, logits: torch.Tensor, targets: torch.Tensor, ignore_index: int):
    """The op is batched over rows already: a vmapped call is one call on more rows."""
    size = info.batch_size
    logits, targets = plumbing.batch_first(logits, in_dims[0], size), plumbing.batch_first(targets, in_dims[1], size)
    logp, lse = _UnderTransforms.apply(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index)
    return (logp.view(size, -1), lse.view(size, -1)), (0, 0)


_UnderTransforms = plumbing.function_for_transforms(
    "LogprobsFromLogits", torch.ops.moafast.logprobs_from_logits, _setup_context, _autograd_backward, _vmap)


def logprobs_from_logits(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities and log-sum-exp, without materialising log_softmax.

    ``lse[n] = log(sum_j exp(logits[n, j]))`` and ``logp[n] = logits[n, targets[n]] - lse[n]``.
    The backward is one pass: ``grad_logits = g_logp * (onehot(targets) - softmax) + g_lse * softmax``.

    Args:
        logits: ``[..., V]`` float32, float64, bfloat16 or float16, on CPU or CUDA. The last dimension
            must be unit-stride to avoid a copy; leading dimensions are flattened.
        targets: ``[...]`` int64 or int32 class indices, matching ``logits.shape[:-1]``.
        ignore_index: rows with this target give ``logp = lse = 0`` and no gradient.

    Returns:
        ``(logp, lse)``, each of shape ``targets.shape``, in float32 (float64 for float64 logits).
        See the module docstring for the NaN/inf policy.

    Differentiable with autograd and with torch.func's ``grad``, ``vjp``, ``vmap`` and their compositions
    (``jacrev``, per-example gradients).
    """
    plumbing.check_tensor("logits", logits)
    plumbing.check_tensor("targets", targets)
    if logits.dim() < 1 or tuple(targets.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"targets: expected shape logits.shape[:-1] = {list(logits.shape[:-1])}, got {list(targets.shape)}"
        )
    flat_logits = logits.reshape(-1, logits.shape[-1]) if logits.dim() != 2 else logits
    op = _UnderTransforms.apply if plumbing.functorch_transform_active() else torch.ops.moafast.logprobs_from_logits
    logp, lse = op(flat_logits, targets.reshape(-1), ignore_index)
    return logp.view(targets.shape), lse.view(targets.shape)
