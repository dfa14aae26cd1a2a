"""`fused_linear_logprobs`: per-token log-probs of ``hidden @ weight.T (+ bias)`` for one head, K routed heads
or all K heads, without ever holding more than one chunk of logits.

Per chunk of tokens, the logits come from one torch GEMM (MKL/oneDNN on CPU, cuBLAS on GPU); the moafast
kernel then computes the softmax statistics and the target log-prob, and in the backward overwrites the
chunk's logits with their gradient in place. The backward recomputes each chunk (4 GEMMs in all:
logits, logits again, d_hidden, d_weight). Tokens whose target is ``ignore_index`` are dropped before the
GEMM: they cost nothing and get ``logp = lse = 0`` and no gradient.

Modes (``weight`` is ``[V, H]`` or ``[K, V, H]``):
  * single head: ``weight[V, H]`` -> ``logp[N]``;
  * routed: ``weight[K, V, H]`` with ``head_index[N]`` -> ``logp[N]``, token n scored by head ``head_index[n]``
    (the cost of one head, not K);
  * all heads: ``weight[K, V, H]`` with ``head_index=None`` -> ``logp[K, N]``.
NaN/inf policy: as :func:`moafast.ops.logprobs_from_logits`, per (token, head) row of logits, except that a
target outside ``[0, V)`` (other than ``ignore_index``) raises IndexError on every device.
"""

from __future__ import annotations

import torch

from moafast.ops import _plumbing as plumbing
from moafast.ops._library import library

DEFAULT_CHUNK_BYTES = 64 * 2**20

library.define(
    "fused_linear_logprobs(Tensor hidden, Tensor weight, Tensor targets, Tensor? head_index, Tensor? bias, "
    "int ignore_index, int chunk_size) -> (Tensor, Tensor)"
)
library.define(
    "fused_linear_logprobs_backward(Tensor grad_logp, Tensor? grad_lse, Tensor hidden, Tensor weight, "
    "Tensor targets, Tensor? head_index, Tensor? bias, Tensor lse, int ignore_index, int chunk_size) "
    "-> (Tensor, Tensor, Tensor)"
)


def default_chunk_size(vocab: int, budget_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Tokens per chunk so that one chunk of float32 logits fits in ``budget_bytes``."""
    return max(1, budget_bytes // (4 * vocab))


def _check(hidden, weight, targets, head_index, bias) -> tuple[torch.device, int, bool]:
    """Returns (device, number of heads, all_heads)."""
    for name, value in (("hidden", hidden), ("weight", weight), ("targets", targets)):
        plumbing.check_tensor(name, value)
    plumbing.check_ndim("hidden", hidden, 2, "[N, H]")
    plumbing.check_dtype("hidden", hidden, plumbing.FLOAT_DTYPES)
    plumbing.check_dtype("targets", targets, plumbing.INDEX_DTYPES)
    rows, width = hidden.shape
    if weight.dim() not in (2, 3):
        raise ValueError(f"weight: expected [V, H] or [K, V, H], got shape {list(weight.shape)}")
    if weight.dtype != hidden.dtype:
        raise TypeError(f"weight: expected the dtype of hidden ({hidden.dtype}), got {weight.dtype}")
    if weight.shape[-1] != width:
        raise ValueError(f"weight: expected last dimension H = hidden.shape[1] = {width}, got {list(weight.shape)}")
    if weight.shape[-2] == 0:
        raise ValueError("weight: expected V >= 1, got an empty vocabulary")
    plumbing.check_shape("targets", targets, (rows,), "[N] with N = hidden.shape[0]")
    heads = weight.shape[0] if weight.dim() == 3 else 1
    if head_index is not None:
        if weight.dim() != 3:
            raise ValueError("head_index: routing needs weight[K, V, H]; got a single-head weight[V, H]")
        plumbing.check_dtype("head_index", head_index, plumbing.INDEX_DTYPES)
        plumbing.check_shape("head_index", head_index, (rows,), "[N] with N = hidden.shape[0]")
    if bias is not None:
        plumbing.check_shape("bias", bias, tuple(weight.shape[:-1]), "weight.shape[:-1]")
        if bias.dtype != hidden.dtype:
            raise TypeError(f"bias: expected the dtype of hidden ({hidden.dtype}), got {bias.dtype}")
    device = plumbing.check_same_device(hidden=hidden, weight=weight, targets=targets, head_index=head_index,
                                        bias=bias)
    return device, heads, weight.dim() == 3 and head_index is None


def check_targets_in_range(name: str, targets: torch.Tensor, ignore_index: int, vocab: int) -> torch.Tensor:
    """The mask of ``targets != ignore_index``; raises IndexError naming the first other target outside
    ``[0, vocab)`` (one device sync)."""
    valid = targets != ignore_index
    out_of_range = valid & ((targets < 0) | (targets >= vocab))
    if bool(out_of_range.any()):
        index = out_of_range.nonzero()[0].tolist()
        raise IndexError(f"{name}{index} = {int(targets[tuple(index)])} is outside [0, {vocab}) and is not "
                         f"ignore_index ({ignore_index})")
    return valid


def _segments(targets, head_index, heads, all_heads, ignore_index, vocab):
    """(head, output row, token indices) for every group of tokens scored by one head. Finding the groups
    syncs with the device once per call (index lists), never per token."""
    valid = check_targets_in_range("targets", targets, ignore_index, vocab)
    if head_index is None:
        tokens = valid.nonzero().squeeze(1)
        if all_heads:
            return [(k, k, tokens) for k in range(heads)]
        return [(None, None, tokens)]
    bad = valid & ((head_index < 0) | (head_index >= heads))
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        raise IndexError(f"head_index[{row}] = {int(head_index[row])} is outside [0, {heads}) (K = weight.shape[0])")
    return [(k, None, (valid & (head_index == k)).nonzero().squeeze(1)) for k in range(heads)]


def _head(tensor, k):
    return tensor if k is None or tensor is None else tensor[k]


def _chunks(tokens: torch.Tensor, chunk_size: int):
    return tokens.split(chunk_size) if tokens.numel() else ()


def _logits(hidden, weight, bias, tokens):
    chunk = hidden.index_select(0, tokens)
    logits = chunk @ weight.t()
    if bias is not None:
        logits += bias
    return chunk, logits


def _launch_forward(logits, targets, logp, lse, device):
    index, stream = plumbing.launch_target(device)
    plumbing.extension().logprobs_forward(
        logits.data_ptr(), logits.shape[0], logits.shape[1], logits.stride(0), targets.data_ptr(), 1, -1,
        logp.data_ptr(), lse.data_ptr(), plumbing.dtype_code(logits.dtype), index, stream, plumbing.num_threads())


def _launch_backward_in_place(logits, targets, lse, grad_logp, grad_lse, device):
    index, stream = plumbing.launch_target(device)
    plumbing.extension().logprobs_backward(
        logits.data_ptr(), logits.shape[0], logits.shape[1], logits.stride(0), targets.data_ptr(), 1, -1,
        lse.data_ptr(), grad_logp.data_ptr(), 1, 0 if grad_lse is None else grad_lse.data_ptr(), 1,
        logits.data_ptr(), plumbing.dtype_code(logits.dtype), index, stream, plumbing.num_threads())


def _output_shape(hidden, heads, all_heads):
    return (heads, hidden.shape[0]) if all_heads else (hidden.shape[0],)


@torch.library.impl(library, "fused_linear_logprobs", "CPU")
@torch.library.impl(library, "fused_linear_logprobs", "CUDA")
def _forward(hidden, weight, targets, head_index, bias, ignore_index, chunk_size):
    device, heads, all_heads = _check(hidden, weight, targets, head_index, bias)
    targets = targets.to(torch.int64)
    accumulation = plumbing.accumulation_dtype(hidden.dtype)
    logp = torch.zeros(_output_shape(hidden, heads, all_heads), dtype=accumulation, device=device)
    lse = torch.zeros_like(logp)
    chunk_size = chunk_size if chunk_size > 0 else default_chunk_size(weight.shape[-2])
    for k, out_row, tokens in _segments(targets, head_index, heads, all_heads, ignore_index, weight.shape[-2]):
        w, b = _head(weight, k), _head(bias, k)
        logp_out, lse_out = _head(logp, out_row), _head(lse, out_row)
        for chunk_tokens in _chunks(tokens, chunk_size):
            _, logits = _logits(hidden, w, b, chunk_tokens)
            chunk_logp = torch.empty(chunk_tokens.numel(), dtype=accumulation, device=device)
            chunk_lse = torch.empty_like(chunk_logp)
            _launch_forward(logits, targets.index_select(0, chunk_tokens), chunk_logp, chunk_lse, device)
            logp_out.index_copy_(0, chunk_tokens, chunk_logp)
            lse_out.index_copy_(0, chunk_tokens, chunk_lse)
            del logits  # before the next chunk's GEMM: never two chunks of logits alive
    return logp, lse


@torch.library.impl(library, "fused_linear_logprobs_backward", "CPU")
@torch.library.impl(library, "fused_linear_logprobs_backward", "CUDA")
def _backward(grad_logp, grad_lse, hidden, weight, targets, head_index, bias, lse, ignore_index, chunk_size):
    device, heads, all_heads = _check(hidden, weight, targets, head_index, bias)
    targets = targets.to(torch.int64)
    accumulation = plumbing.accumulation_dtype(hidden.dtype)
    shape = _output_shape(hidden, heads, all_heads)
    for name, tensor in (("grad_logp", grad_logp), ("grad_lse", grad_lse), ("lse", lse)):
        if tensor is not None:
            plumbing.check_shape(name, tensor, shape, "[K, N]" if all_heads else "[N]")
            plumbing.check_dtype(name, tensor, (accumulation,))
    grad_hidden = torch.zeros(hidden.shape, dtype=accumulation, device=device)
    grad_weight = torch.zeros(weight.shape, dtype=accumulation, device=device)
    grad_bias = torch.zeros(bias.shape if bias is not None else (0,), dtype=accumulation, device=device)
    chunk_size = chunk_size if chunk_size > 0 else default_chunk_size(weight.shape[-2])
    for k, out_row, tokens in _segments(targets, head_index, heads, all_heads, ignore_index, weight.shape[-2]):
        w, b = _head(weight, k), _head(bias, k)
        row_of = out_row if all_heads else None
        for chunk_tokens in _chunks(tokens, chunk_size):
            chunk, logits = _logits(hidden, w, b, chunk_tokens)
            g_lse = None if grad_lse is None else _head(grad_lse, row_of).index_select(0, chunk_tokens)
            _launch_backward_in_place(
                logits, targets.index_select(0, chunk_tokens), _head(lse, row_of).index_select(0, chunk_tokens),
                _head(grad_logp, row_of).index_select(0, chunk_tokens), g_lse, device)
            grad_logits = logits  # overwritten in place by the kernel
            grad_hidden.index_add_(0, chunk_tokens, (grad_logits @ w).to(accumulation))
            if grad_logits.dtype == accumulation:  # accumulate inside the GEMM, no [V, H] temporary
                _head(grad_weight, k).addmm_(grad_logits.t(), chunk)
            else:
                _head(grad_weight, k).add_((grad_logits.t() @ chunk).to(accumulation))
            if bias is not None:
                _head(grad_bias, k).add_(grad_logits.sum(0, dtype=accumulation))
            del chunk, logits, grad_logits  # before the next chunk's GEMM
    return (grad_hidden.to(hidden.dtype), grad_weight.to(weight.dtype),
            grad_bias.to(hidden.dtype))


@torch.library.register_fake("moafast::fused_linear_logprobs")
def _forward_fake(hidden, weight, targets, head_index, bias, ignore_index, chunk_size):
    _, heads, all_heads = _check(hidden, weight, targets, head_index, bias)
    accumulation = plumbing.accumulation_dtype(hidden.dtype)
    shape = _output_shape(hidden, heads, all_heads)
    return hidden.new_empty(shape, dtype=accumulation), hidden.new_empty(shape, dtype=accumulation)


@torch.library.register_fake("moafast::fused_linear_logprobs_backward")
def _backward_fake(grad_logp, grad_lse, hidden, weight, targets, head_index, bias, lse, ignore_index, chunk_size):
    _check(hidden, weight, targets, head_index, bias)
    return (torch.empty_like(hidden), torch.empty_like(weight),
            hidden.new_empty(bias.shape if bias is not None else (0,)))


def _setup_context(ctx, inputs, output) -> None:
    hidden, weight, targets, head_index, bias, ignore_index, chunk_size = inputs
    ctx.save_for_backward(hidden, weight, targets, head_index, bias, output[1])
    ctx.ignore_index, ctx.chunk_size = ignore_index, chunk_size


def _autograd_backward(ctx, grad_logp, grad_lse):
    hidden, weight, targets, head_index, bias, lse = ctx.saved_tensors
    if grad_logp is None:
        grad_logp = torch.zeros_like(lse)
    grad_hidden, grad_weight, grad_bias = torch.ops.moafast.fused_linear_logprobs_backward(
        grad_logp, grad_lse, hidden, weight, targets, head_index, bias, lse, ctx.ignore_index, ctx.chunk_size)
    return grad_hidden, grad_weight, None, None, grad_bias if bias is not None else None, None, None


torch.library.register_autograd("moafast::fused_linear_logprobs", _autograd_backward, setup_context=_setup_context)


_UnderTransforms = plumbing.function_for_transforms(
    "FusedLinearLogprobs", torch.ops.moafast.fused_linear_logprobs, _setup_context, _autograd_backward)


def fused_linear_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    head_index: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logp, lse)`` of ``logits = hidden @ weight.T + bias`` at ``targets``, chunk by chunk.

    Args:
        hidden: ``[N, H]`` float32/float64/bfloat16/float16. weight: ``[V, H]`` or ``[K, V, H]``, same dtype.
        targets: ``[N]`` int64/int32; ``ignore_index`` rows are skipped (0, no gradient).
        head_index: ``[N]`` head of each token (routed mode); ``None`` with ``[K, V, H]`` scores all heads.
        bias: ``[V]`` or ``[K, V]``, optional.
        chunk_size: tokens per chunk of logits (default: a 64 MiB float32 budget, ``default_chunk_size``).

    Returns:
        ``(logp, lse)``: ``[N]`` (single head, routed) or ``[K, N]`` (all heads), float32 (float64 for float64).

    Differentiable with autograd and under torch.func transforms (``grad``, ``vjp``; ``vmap`` by PyTorch's
    per-element loop).
    """
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size: expected a positive number of tokens, got {chunk_size}")
    op = _UnderTransforms.apply if plumbing.functorch_transform_active() else torch.ops.moafast.fused_linear_logprobs
    return op(hidden, weight, targets, head_index, bias, ignore_index, chunk_size or 0)
