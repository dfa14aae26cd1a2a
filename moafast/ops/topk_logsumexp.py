"""``topk_with_logsumexp``: the first stage of candidate-mode tilted sampling (MAVIS scores only the base
model's top-k), in one read of each row: the k largest of ``logits / T`` (descending, ties: lower token id
first), their ids and the full-vocabulary ``logsumexp(logits / T)``.

NaN/inf policy: NaN logits make the row's logsumexp NaN and rank above every value (torch.sort's order); ``+inf``
makes it ``+inf`` (NaN with a NaN in the row); ``-inf`` logits are tokens of zero mass (ranked last). On CUDA it is
``torch.topk`` + ``logsumexp`` on the device (ties in any order).
"""

from __future__ import annotations

import torch

from moafast.ops import _plumbing as plumbing
from moafast.ops._library import library
from moafast.ops._sampling_args import check_logits, check_temperature

library.define("topk_with_logsumexp(Tensor logits, int k, float inverse_temperature) -> (Tensor, Tensor, Tensor)")


@torch.library.impl(library, "topk_with_logsumexp", "CPU")
@torch.library.impl(library, "topk_with_logsumexp", "CUDA")
def _topk_with_logsumexp(logits, k, inverse_temperature):
    batch, vocab = check_logits(logits)
    if not 1 <= k <= vocab:
        raise ValueError(f"k: expected 1 <= k <= V = {vocab}, got {k}")
    accumulation = plumbing.accumulation_dtype(logits.dtype)
    if logits.device.type == "cuda":  # no fused CUDA kernel yet: two passes of torch ops on the device
        scaled = logits.detach().to(accumulation) * inverse_temperature
        top = scaled.topk(k, dim=1)
        return top.values, top.indices, scaled.logsumexp(dim=1)
    host = plumbing.unit_stride_rows(logits.detach())
    top_values = torch.empty(batch, k, dtype=accumulation)
    top_indices = torch.empty(batch, k, dtype=torch.int64)
    lse = torch.empty(batch, dtype=accumulation)
    if batch:
        plumbing.extension().topk_logsumexp(host.data_ptr(), batch, vocab, host.stride(0),
                                            plumbing.dtype_code(logits.dtype), k, inverse_temperature,
                                            top_values.data_ptr(), top_indices.data_ptr(), lse.data_ptr(),
                                            plumbing.num_threads())
    return top_values, top_indices, lse


@torch.library.register_fake("moafast::topk_with_logsumexp")
def _topk_with_logsumexp_fake(logits, k, inverse_temperature):
    batch, vocab = check_logits(logits)
    if not 1 <= k <= vocab:
        raise ValueError(f"k: expected 1 <= k <= V = {vocab}, got {k}")
    accumulation = plumbing.accumulation_dtype(logits.dtype)
    return (logits.new_empty(batch, k, dtype=accumulation), logits.new_empty(batch, k, dtype=torch.int64),
            logits.new_empty(batch, dtype=accumulation))


def _not_differentiable_topk(ctx, *grads):
    raise RuntimeError("topk_with_logsumexp is not differentiable; gather from logits for gradients")


torch.library.register_autograd("moafast::topk_with_logsumexp", _not_differentiable_topk)


def topk_with_logsumexp(logits: torch.Tensor, k: int, *,
                        temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first stage of candidate mode, in one read of each row.

    Returns:
        ``(top_values [B, k], top_indices [B, k], lse [B])``: the k largest of ``logits / T`` in descending
        order (ties: lower token id first), their token ids, and ``logsumexp(logits / T)`` over the whole
        vocabulary; float32 (float64 for float64 logits).
    """
    check_logits(logits)
    check_temperature(temperature)
    direct = not plumbing.differentiated(logits) and plumbing.kernel_may_run_directly(logits)
    return (_topk_with_logsumexp if direct else torch.ops.moafast.topk_with_logsumexp)(logits, k, 1.0 / temperature)
