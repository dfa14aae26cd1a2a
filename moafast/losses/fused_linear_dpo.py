"""`fused_linear_dpo_loss`: the (multi-head) DPO loss from hidden states in 3 GEMMs, gradients computed in the forward.

Per chunk of whole preference pairs (all of them scored by one head): one GEMM gives the chunk's logits, the
moafast kernel their softmax statistics and target log-probs; the pairs' sequence log-probs then give each
pair's loss gradient in closed form (:mod:`moafast.losses.pair_gradients`), the kernel overwrites the logits
with their gradient in place, and two GEMMs give ``d_hidden`` and accumulate ``d_weight``. The backward only
scales these by the upstream gradient of the loss (no copy when that is 1). Peak memory: one chunk of float32 logits, at least one
pair (``(len_c + len_r) · V · 4`` bytes), plus the gradients themselves.

Loss: ``mean over heads present of (mean over the head's pairs of ℓ_i)``, ``ℓ_i`` the DPO-family loss of
pair i (:func:`moafast.losses.dpo_loss`); with one head it is the plain mean. Differentiable through the loss
only: the returned sequence log-probs are detached.
"""

from __future__ import annotations

import torch

from moafast.losses.dpo import _validate, dpo_loss
from moafast.losses.head_means import mean_over_present_heads, pair_weights
from moafast.losses.pair_gradients import PAIR_LOCAL_LOSS_TYPES, pair_loss_gradients
from moafast.ops import _plumbing as plumbing
from moafast.ops._library import library
from moafast.ops.fused_linear_logprobs import (
    _launch_backward_in_place, _launch_forward, _logits, check_targets_in_range, default_chunk_size,
)

library.define(
    "fused_linear_dpo_loss(Tensor hidden, Tensor weight, Tensor labels, Tensor? head_index, Tensor? ref_chosen_logps, "
    "Tensor? ref_rejected_logps, Tensor? bias, str[] loss_types, float[] loss_weights, float beta, "
    "float label_smoothing, str f_divergence_type, float f_alpha_divergence_coef, float discopop_tau, "
    "int ignore_index, int chunk_size) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)"
)


def _check(hidden, weight, labels, head_index, ref_chosen, ref_rejected, bias) -> tuple[int, int]:
    """Returns (pairs, heads)."""
    for name, value in (("hidden", hidden), ("weight", weight), ("labels", labels)):
        plumbing.check_tensor(name, value)
    if hidden.dim() != 3 or hidden.shape[0] % 2:
        raise ValueError(f"hidden: expected [2B, T, H] ([chosen; rejected]), got {list(hidden.shape)}")
    plumbing.check_dtype("hidden", hidden, plumbing.FLOAT_DTYPES)
    sequences, length, width = hidden.shape
    pairs = sequences // 2
    if weight.dim() not in (2, 3) or weight.shape[-1] != width or weight.shape[-2] == 0:
        raise ValueError(f"weight: expected [V, H] or [K, V, H] with H = {width} and V >= 1, "
                         f"got {list(weight.shape)}")
    if weight.dtype != hidden.dtype:
        raise TypeError(f"weight: expected the dtype of hidden ({hidden.dtype}), got {weight.dtype}")
    plumbing.check_dtype("labels", labels, plumbing.INDEX_DTYPES)
    plumbing.check_shape("labels", labels, (sequences, length), "[2B, T] like hidden.shape[:2]")
    heads = weight.shape[0] if weight.dim() == 3 else 1
    if head_index is not None:
        plumbing.check_dtype("head_index", head_index, plumbing.INDEX_DTYPES)
        plumbing.check_shape("head_index", head_index, (pairs,), "[B] (one head per pair)")
    elif weight.dim() == 3:
        raise ValueError("head_index: weight[K, V, H] has K heads; give each pair's head as head_index[B]")
    accumulation = plumbing.accumulation_dtype(hidden.dtype)
    for name, value in (("ref_chosen_logps", ref_chosen), ("ref_rejected_logps", ref_rejected)):
        if value is not None:
            plumbing.check_shape(name, value, (pairs,), "[B]")
            plumbing.check_dtype(name, value, (accumulation,))
    if bias is not None:
        plumbing.check_shape("bias", bias, tuple(weight.shape[:-1]), "weight.shape[:-1]")
        if bias.dtype != hidden.dtype:
            raise TypeError(f"bias: expected the dtype of hidden ({hidden.dtype}), got {bias.dtype}")
    plumbing.check_same_device(hidden=hidden, weight=weight, labels=labels, head_index=head_index,
                               ref_chosen_logps=ref_chosen, ref_rejected_logps=ref_rejected, bias=bias)
    return pairs, heads


def _pair_chunks(pair_ids: list[int], tokens_per_pair: list[int], chunk_tokens: int) -> list[list[int]]:
    """Consecutive groups of pairs with at most ``chunk_tokens`` tokens in all, at least one pair each."""
    groups: list[list[int]] = []
    current: list[int] = []
    used = 0
    for pair in pair_ids:
        if current and used + tokens_per_pair[pair] > chunk_tokens:
            groups.append(current)
            current, used = [], 0
        current.append(pair)
        used += tokens_per_pair[pair]
    return groups + [current] if current else groups


@torch.library.impl(library, "fused_linear_dpo_loss", "CPU")
@torch.library.impl(library, "fused_linear_dpo_loss", "CUDA")
def _forward(hidden, weight, labels, head_index, ref_chosen, ref_rejected, bias, loss_types, loss_weights, beta,
             label_smoothing, f_divergence_type, f_alpha_divergence_coef, discopop_tau, ignore_index, chunk_size):
    pairs, heads = _check(hidden, weight, labels, head_index, ref_chosen, ref_rejected, bias)
    device, accumulation = hidden.device, plumbing.accumulation_dtype(hidden.dtype)
    sequences, length, width = hidden.shape
    vocab = weight.shape[-2]
    labels = labels.to(torch.int64)
    valid = check_targets_in_range("labels", labels, ignore_index, vocab)
    lengths = valid.sum(1)
    heads_of_pairs = (torch.zeros(pairs, dtype=torch.int64, device=device) if head_index is None
                      else head_index.to(torch.int64))
    if head_index is not None and pairs and bool(((heads_of_pairs < 0) | (heads_of_pairs >= heads)).any()):
        raise IndexError(f"head_index: expected values in [0, {heads}) (K = weight.shape[0]), got "
                         f"{heads_of_pairs.tolist()}")
    weights_of_pairs = pair_weights(heads_of_pairs, heads, accumulation)
    loss_options = {"loss_type": list(loss_types), "loss_weights": list(loss_weights), "beta": beta,
                    "label_smoothing": label_smoothing, "f_divergence_type": f_divergence_type,
                    "f_alpha_divergence_coef": f_alpha_divergence_coef, "discopop_tau": discopop_tau}

    flat_hidden = hidden.reshape(sequences * length, width)
    flat_labels = labels.reshape(-1)
    logps = torch.zeros(sequences, dtype=accumulation, device=device)
    grad_hidden = torch.zeros(flat_hidden.shape, dtype=accumulation, device=device)
    grad_weight = torch.zeros(weight.shape, dtype=accumulation, device=device)
    grad_bias = torch.zeros(bias.shape if bias is not None else (0,), dtype=accumulation, device=device)
    chunk_tokens = chunk_size if chunk_size > 0 else default_chunk_size(vocab)
    pair_lengths = (lengths[:pairs] + lengths[pairs:]).tolist()
    chosen_tokens = lengths[:pairs].sum()
    pair_heads = heads_of_pairs.tolist()
    for k in range(heads):
        w = weight[k] if weight.dim() == 3 else weight
        b = None if bias is None else (bias[k] if bias.dim() == 2 else bias)
        members = [i for i in range(pairs) if pair_heads[i] == k]
        for group in _pair_chunks(members, pair_lengths, chunk_tokens):
            group_pairs = torch.tensor(group, dtype=torch.int64, device=device)
            group_sequences = torch.cat([group_pairs, group_pairs + pairs])
            local_sequence, position = valid[group_sequences].nonzero(as_tuple=True)
            tokens = group_sequences[local_sequence] * length + position
            chunk, logits = _logits(flat_hidden, w, b, tokens)
            token_logp = torch.empty(tokens.numel(), dtype=accumulation, device=device)
            token_lse = torch.empty_like(token_logp)
            chunk_targets = flat_labels.index_select(0, tokens)
            if tokens.numel():
                _launch_forward(logits, chunk_targets, token_logp, token_lse, device)
            sequence_logp = torch.zeros(group_sequences.numel(), dtype=accumulation, device=device)
            sequence_logp.index_add_(0, local_sequence, token_logp)
            logps.index_copy_(0, group_sequences, sequence_logp)
            grad_chosen, grad_rejected = pair_loss_gradients(
                sequence_logp[:len(group)], sequence_logp[len(group):],
                None if ref_chosen is None else ref_chosen.index_select(0, group_pairs),
                None if ref_rejected is None else ref_rejected.index_select(0, group_pairs),
                weights_of_pairs.index_select(0, group_pairs), chosen_lengths=lengths.index_select(0, group_pairs),
                rejected_lengths=lengths.index_select(0, group_pairs + pairs), sft_total_length=chosen_tokens,
                **loss_options)
            if not tokens.numel():
                continue
            token_grad = torch.cat([grad_chosen, grad_rejected]).index_select(0, local_sequence).contiguous()
            _launch_backward_in_place(logits, chunk_targets, token_lse, token_grad, None, device)
            grad_hidden.index_copy_(0, tokens, (logits @ w).to(accumulation))
            target = grad_weight[k] if weight.dim() == 3 else grad_weight
            if logits.dtype == accumulation:
                target.addmm_(logits.t(), chunk)
            else:
                target.add_((logits.t() @ chunk).to(accumulation))
            if bias is not None:
                (grad_bias[k] if bias.dim() == 2 else grad_bias).add_(logits.sum(0, dtype=accumulation))
            del chunk, logits  # before the next chunk's GEMM: never two chunks of logits alive

    out = dpo_loss(logps[:pairs], logps[pairs:], ref_chosen, ref_rejected, chosen_lengths=lengths[:pairs],
                   rejected_lengths=lengths[pairs:], **loss_options)
    loss = mean_over_present_heads(out.losses, heads_of_pairs, heads)
    return (loss, logps[:pairs].clone(), logps[pairs:].clone(), grad_hidden.view(hidden.shape).to(hidden.dtype),
            grad_weight.to(weight.dtype), grad_bias.to(hidden.dtype))


@torch.library.register_fake("moafast::fused_linear_dpo_loss")
def _forward_fake(hidden, weight, labels, head_index, ref_chosen, ref_rejected, bias, loss_types, loss_weights, beta,
                  label_smoothing, f_divergence_type, f_alpha_divergence_coef, discopop_tau, ignore_index,
                  chunk_size):
    pairs, _ = _check(hidden, weight, labels, head_index, ref_chosen, ref_rejected, bias)
    accumulation = plumbing.accumulation_dtype(hidden.dtype)
    return (hidden.new_empty((), dtype=accumulation), hidden.new_empty((pairs,), dtype=accumulation),
            hidden.new_empty((pairs,), dtype=accumulation), torch.empty_like(hidden), torch.empty_like(weight),
            hidden.new_empty(bias.shape if bias is not None else (0,)))


def _setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(*output[3:])
    ctx.mark_non_differentiable(*output[1:])
    ctx.set_materialize_grads(False)  # no [K, V, H] zeros for the gradient outputs' (unused) gradients
    ctx.has_bias = inputs[6] is not None


def _autograd_backward(ctx, grad_loss, *unused_grads):
    grads = ctx.saved_tensors
    traced = torch.compiler.is_compiling() or any(type(g) is not torch.Tensor for g in (grad_loss, *grads))
    if traced or not bool(grad_loss == 1):  # loss.backward() passes 1: no [K, V, H] copy of d_weight then
        grads = tuple(g * grad_loss.to(g.dtype) for g in grads)
    grad_hidden, grad_weight, grad_bias = grads
    return (grad_hidden, grad_weight, None, None, None, None, grad_bias if ctx.has_bias else None, None, None, None,
            None, None, None, None, None, None)


torch.library.register_autograd("moafast::fused_linear_dpo_loss", _autograd_backward, setup_context=_setup_context)


def fused_linear_dpo_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    head_index: torch.Tensor | None = None,
    ref_chosen_logps: torch.Tensor | None = None,
    ref_rejected_logps: torch.Tensor | None = None,
    *,
    bias: torch.Tensor | None = None,
    loss_type: str | list[str] = "sigmoid",
    loss_weights: list[float] | None = None,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    f_divergence_type: str = "reverse_kl",
    f_alpha_divergence_coef: float = 1.0,
    discopop_tau: float = 0.05,
    ignore_index: int = -100,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, chosen_logps[B], rejected_logps[B])`` of the DPO family from hidden states, 3 GEMMs.

    Args:
        hidden: ``[2B, T, H]`` of ``[chosen; rejected]``, aligned with ``labels[2B, T]`` (position t predicts
            ``labels[:, t]``; ``ignore_index`` outside the completions).
        weight: ``[V, H]`` (one head) or ``[K, V, H]`` with ``head_index[B]`` (each pair scored by its head).
        ref_*_logps: ``[B]`` reference log-probs in the accumulation dtype, or ``None`` (reference-free).
        loss_type ... discopop_tau: as :func:`moafast.losses.dpo_loss`; batch-coupled types (aot) are refused.
        chunk_size: tokens of logits per chunk (default: a 64 MiB float32 budget); a chunk holds whole pairs,
            at least one.

    Returns:
        the scalar loss (differentiable w.r.t. ``hidden``, ``weight``, ``bias``) and the detached sequence
        log-probs of the chosen and rejected completions under each pair's head.
    """
    loss_types = [loss_type] if isinstance(loss_type, str) else list(loss_type)
    weights = [1.0] * len(loss_types) if loss_weights is None else [float(w) for w in loss_weights]
    probe = torch.zeros(0) if not isinstance(hidden, torch.Tensor) else hidden.new_zeros(0)
    _validate(loss_types, weights, beta, label_smoothing, f_divergence_type,
              {"chosen_logps": probe, "rejected_logps": probe,
               "chosen_lengths": probe, "rejected_lengths": probe})
    if not set(loss_types) <= PAIR_LOCAL_LOSS_TYPES:
        raise ValueError(f"loss_type: {sorted(set(loss_types) - PAIR_LOCAL_LOSS_TYPES)} couple the pairs of a batch "
                         f"(they sort it), so the gradient is not known per chunk; use "
                         f"moafast.losses.multi_head_dpo_loss(..., grad_in_forward=False)")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size: expected a positive number of tokens, got {chunk_size}")
    loss, chosen, rejected, *_ = torch.ops.moafast.fused_linear_dpo_loss(
        hidden, weight, labels, head_index, ref_chosen_logps, ref_rejected_logps, bias, loss_types, weights,
        float(beta), float(label_smoothing), f_divergence_type, float(f_alpha_divergence_coef), float(discopop_tau),
        ignore_index, chunk_size or 0)
    return loss, chosen.detach(), rejected.detach()
