"""Multi-reward tilted sampling: tilt, temperature, top-k, top-p, min-p and the draw, fused per row.

Per row b (a request) with weights ``w[b, :]``, ``beta[b]`` and temperature ``T``, the processed logits are

* ``t = (l + beta * sum_k w[b, k] * Q[k, b, :]) / T`` (HF's order: logits processors before temperature), or
* ``t = l / T + beta * sum_k w[b, k] * Q[k, b, :]`` with ``temperature_before_tilt=True`` (MAVIS's order);

then, in this order,

* top-k: keep ``t >= `` the k-th largest ``t`` (ties at the k-th value are all kept, as in HF);
* top-p: over the top-k survivors, keep the smallest set of largest entries whose probability mass reaches
  ``p`` (tie-inclusive: ``t >= tau`` with ``tau`` the largest value whose upper mass reaches ``p``);
* min-p: keep ``t >= max(t) + log(min_p)`` (probability at least ``min_p`` times the top one).

The sample is one inverse-CDF draw over the kept entries in index order, with a uniform from a
counter-based generator (Philox4x32-10) keyed by ``(seed, offset, stream)``: with ``seed`` an int, row b uses
stream b; with a ``[B]`` tensor of per-request seeds, stream 0 of its own seed. A row's token therefore depends
only on its seed, its step (``offset``) and its own inputs, never on the other rows, its position in the
batch or the thread count.

Dense mode: ``values`` is ``[K, B, V]`` (the dtype of ``logits``). Candidate mode: ``candidates[B, k]`` holds
distinct token ids and ``values`` is ``[K, B, k]`` (any float dtype); the tilt, filters and draw then run
over those k tokens only (everything else has probability 0), as MAVIS does over the base model's top-k.

On CUDA (float32, bfloat16, float16 logits) a tilt kernel tiles (vocabulary chunk, row) and a row kernel
filters by bisection over order-preserving keys and draws with the same Philox uniform (compiled, not yet
run on a GPU); float64 CUDA tensors are computed on the host; ``topk_with_logsumexp`` on CUDA is
``torch.topk`` + ``logsumexp`` (ties in any order).

Weights are used as given, never renormalised. NaN/inf policy: NaN or inf in ``weights`` or ``beta`` raises
ValueError; a row whose tilted logits hold NaN or ``+inf`` raises ValueError naming the row; ``-inf`` logits
are tokens that cannot be drawn (a row with none left raises). Objectives whose coefficient
``beta * w[b, k]`` is 0 are not read for that row (so ``0 * inf`` never arises).

``tilted_sample`` and ``topk_with_logsumexp`` called eagerly on plain CPU/CUDA tensors that autograd does not
record run the op's implementation without the torch.library dispatcher (the same outputs, about 45 us less per
call: a decoding step calls them once per token); torch.compile, tracing, fake and meta tensors and torch.func
transforms see the ops ``moafast::tilted_sample`` and ``moafast::topk_with_logsumexp``.
"""

from __future__ import annotations

import math

import torch

from moafast.ops import _plumbing as plumbing
from moafast.ops._library import library
from moafast.ops._sampling_args import (SAMPLING_DTYPES, check_logits, check_temperature, coefficients_of,
                                        random_keys)
_PROBLEMS = 4

library.define(
    "tilted_sample(Tensor logits, Tensor values, Tensor coefficients, Tensor? candidates, Tensor seeds, "
    "Tensor offsets, Tensor streams, float inverse_temperature, int top_k, float top_p, float min_p, "
    "bool return_logprobs, Tensor? base_logsumexp) -> (Tensor, Tensor, Tensor)"
)
library.define(
    "tilted_logits(Tensor logits, Tensor values, Tensor coefficients, Tensor? candidates, float inverse_temperature, "
    "int top_k, float top_p, float min_p) -> Tensor"
)


def _check_problem(logits: torch.Tensor, values: torch.Tensor, coefficients: torch.Tensor,
                   candidates: torch.Tensor | None, top_k: int, top_p: float, min_p: float) -> int:
    """Checks the op-level arguments; returns the width (V dense, k candidates)."""
    batch, vocab = check_logits(logits)
    plumbing.check_tensor("values", values)
    plumbing.check_ndim("values", values, 3, "[K, B, V] (dense) or [K, B, k] (candidate mode)")
    plumbing.check_dtype("values", values, SAMPLING_DTYPES)
    objectives = values.shape[0]
    if candidates is None:
        width = vocab
        plumbing.check_shape("values", values, (objectives, batch, vocab), "[K, B, V] like logits")
        if values.dtype != logits.dtype:
            raise TypeError(f"values: expected the dtype of logits ({logits.dtype}) in dense mode, got "
                            f"{values.dtype} (cast one of them)")
    else:
        plumbing.check_tensor("candidates", candidates)
        plumbing.check_dtype("candidates", candidates, plumbing.INDEX_DTYPES)
        plumbing.check_ndim("candidates", candidates, 2, "[B, k]")
        width = candidates.shape[1]
        plumbing.check_shape("candidates", candidates, (batch, width), "[B, k] with B = logits.shape[0]")
        if not 1 <= width <= vocab:
            raise ValueError(f"candidates: expected 1 <= k <= V = {vocab} candidates per row, got k = {width}")
        plumbing.check_shape("values", values, (objectives, batch, width), "[K, B, k] like candidates")
    plumbing.check_tensor("coefficients", coefficients)
    plumbing.check_shape("coefficients", coefficients, (batch, objectives), "[B, K]")
    if not 0 <= top_k <= width:
        raise ValueError(f"top_k: expected 0 (off) or 1 <= top_k <= {width} (the tokens in a row), got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p: expected a value in (0, 1], got {top_p}")
    if not 0.0 <= min_p < 1.0:
        raise ValueError(f"min_p: expected a value in [0, 1), got {min_p}")
    plumbing.check_same_device(logits=logits, values=values, coefficients=coefficients, candidates=candidates)
    return width


def _moved(tensor: torch.Tensor, where: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``tensor`` on ``where`` and in ``dtype``, copied only when it is not already so (autograd does not record
    these copies: the op's implementation runs below it, or directly when nothing requires grad)."""
    if tensor.device != where:
        tensor = tensor.to(where)
    return tensor if dtype is None or tensor.dtype == dtype else tensor.to(dtype)


def _on(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    if dtype is not None and tensor.dtype != dtype:
        tensor = tensor.to(dtype)
    return tensor if tensor.device == device else tensor.to(device)


def _check_candidate_ids(candidates: torch.Tensor, vocab: int) -> None:
    if candidates.numel() == 0:
        return
    low, high = int(candidates.min()), int(candidates.max())
    if low < 0 or high >= vocab:
        bad = low if low < 0 else high
        raise ValueError(f"candidates: expected token ids in [0, V) = [0, {vocab}), got {bad}")
    ordered = candidates.sort(dim=1).values
    repeated = (ordered[:, 1:] == ordered[:, :-1]).any(dim=1)
    if bool(repeated.any()):
        row = int(repeated.nonzero()[0, 0])
        raise ValueError(f"candidates[{row}]: expected distinct token ids, got a repeated one")


def _raise_row_problem(code: int) -> None:
    row, problem = divmod(code, _PROBLEMS)
    if problem == 3:
        raise ValueError(f"weights/beta: expected finite values (beta * weights[{row}] holds NaN or inf)")
    if problem == 1:
        raise ValueError(f"row {row}: the tilted logits hold NaN or +inf (check logits[{row}], values[:, {row}] "
                         f"and weights[{row}])")
    raise ValueError(f"row {row}: every token has logit -inf after the tilt, so there is nothing to sample")


def _check_base_logsumexp(base_logsumexp: torch.Tensor | None, logits: torch.Tensor) -> None:
    if base_logsumexp is not None:
        plumbing.check_tensor("base_logsumexp", base_logsumexp)
        plumbing.check_dtype("base_logsumexp", base_logsumexp, (torch.float32, torch.float64))
        plumbing.check_shape("base_logsumexp", base_logsumexp, (logits.shape[0],), "[B] with B = logits.shape[0]")


def _run(logits, values, coefficients, candidates, seeds, offsets, streams, inverse_temperature, top_k, top_p,
         min_p, *, sample: bool, return_logprobs: bool, processed: bool, base_logsumexp=None):
    width = _check_problem(logits, values, coefficients, candidates, top_k, top_p, min_p)
    _check_base_logsumexp(base_logsumexp, logits)
    batch, vocab = logits.shape
    accumulation = plumbing.accumulation_dtype(logits.dtype)
    device = logits.device
    # The CUDA kernel takes float32/bfloat16/float16 logits; float64 CUDA tensors are computed on the host.
    where = device if device.type == "cuda" and logits.dtype != torch.float64 else torch.device("cpu")
    logits_in = plumbing.unit_stride_rows(_moved(logits, where))
    values_in = _moved(values, where)
    if candidates is not None:
        values_in = _moved(values_in, where, accumulation)
        candidates_in = _moved(candidates, where, torch.int64).contiguous()
        _check_candidate_ids(candidates_in, vocab)
    else:
        candidates_in = None
    if values_in.shape[0] and values_in.stride(2) != 1 and width > 1:
        values_in = values_in.contiguous()
    coefficients_in = _moved(coefficients, where, torch.float64).contiguous()
    if base_logsumexp is not None:
        base_logsumexp = _moved(base_logsumexp, where, torch.float64).contiguous()
    seeds, offsets, streams = (_moved(t, where, torch.int64).contiguous() for t in (seeds, offsets, streams))
    tokens = torch.empty(batch if sample else 0, dtype=torch.int64, device=where)
    # The kernel writes float64 log-probs; without them, empty outputs already in the accumulation dtype.
    logprobs_dtype = torch.float64 if return_logprobs else accumulation
    tilted = torch.empty(batch if return_logprobs else 0, dtype=logprobs_dtype, device=where)
    base = torch.empty(batch if return_logprobs else 0, dtype=logprobs_dtype, device=where)
    out = torch.empty(batch, width, dtype=accumulation, device=where) if processed else None
    if batch:
        workspace = _Workspace(batch, width, out, where)
        device_index, stream = plumbing.launch_target(where)
        code = plumbing.extension().tilted_sampling(
            logits_in.data_ptr(), batch, vocab, logits_in.stride(0), plumbing.dtype_code(logits.dtype),
            _address(values_in), values_in.shape[0], values_in.stride(0), values_in.stride(1),
            plumbing.dtype_code(values_in.dtype), _address(candidates_in), width,
            width if candidates_in is not None else 0, coefficients_in.data_ptr(), inverse_temperature, top_k,
            top_p, min_p, _address(seeds), _address(offsets), _address(streams), _address(tokens), _address(tilted),
            _address(base), _address(base_logsumexp), _address(out), plumbing.num_threads(),
            *workspace.addresses(), device_index, stream)
        if where.type == "cuda":
            code = workspace.first_problem()
        if code != -1:
            _raise_row_problem(code)
    return (_on(tokens, device), _on(tilted, device, accumulation), _on(base, device, accumulation),
            None if out is None else _on(out, device))


def _address(tensor: torch.Tensor | None) -> int:
    return 0 if tensor is None or tensor.numel() == 0 else tensor.data_ptr()


class _Workspace:
    """The CUDA launcher's buffers (none on the CPU): tilted rows, per-split partials, per-row problems."""

    SETS_PER_WAVE = 264  # about two blocks per SM on an H100/H200; splits the vocabulary when B is small

    def __init__(self, batch: int, width: int, processed: torch.Tensor | None, where: torch.device) -> None:
        self.on_cuda = where.type == "cuda"
        if not self.on_cuda:
            return
        self.splits = max(1, min(math.ceil(width / 4096), math.ceil(self.SETS_PER_WAVE / batch)))
        self.tilted = processed if processed is not None else torch.empty(batch, width, device=where)
        self.partial_max = torch.empty(batch * self.splits, device=where)
        self.partial_bad = torch.empty(batch * self.splits, dtype=torch.int32, device=where)
        self.problems = torch.zeros(batch, dtype=torch.int32, device=where)

    def addresses(self) -> tuple[int, int, int, int, int]:
        if not self.on_cuda:
            return 0, 0, 0, 0, 1
        return (self.tilted.data_ptr(), self.partial_max.data_ptr(), self.partial_bad.data_ptr(),
                self.problems.data_ptr(), self.splits)

    def first_problem(self) -> int:
        """-1, or row * 4 + problem of the first bad row (one device sync)."""
        bad = self.problems.nonzero()
        if not bad.numel():
            return -1
        row = int(bad[0, 0])
        return row * _PROBLEMS + int(self.problems[row])


@torch.library.impl(library, "tilted_sample", "CPU")
@torch.library.impl(library, "tilted_sample", "CUDA")
def _tilted_sample(logits, values, coefficients, candidates, seeds, offsets, streams, inverse_temperature, top_k,
                   top_p, min_p, return_logprobs, base_logsumexp):
    batch = logits.shape[0] if logits.dim() == 2 else 0
    for name, tensor in (("seed", seeds), ("offset", offsets), ("streams", streams)):
        plumbing.check_shape(name, tensor, (batch,), "[B] with B = logits.shape[0]")
    tokens, tilted, base, _ = _run(logits, values, coefficients, candidates, seeds, offsets, streams,
                                   inverse_temperature, top_k, top_p, min_p, sample=True,
                                   return_logprobs=return_logprobs, processed=False, base_logsumexp=base_logsumexp)
    return tokens, tilted, base


@torch.library.register_fake("moafast::tilted_sample")
def _tilted_sample_fake(logits, values, coefficients, candidates, seeds, offsets, streams, inverse_temperature,
                        top_k, top_p, min_p, return_logprobs, base_logsumexp):
    _check_problem(logits, values, coefficients, candidates, top_k, top_p, min_p)
    _check_base_logsumexp(base_logsumexp, logits)
    batch = logits.shape[0]
    accumulation = plumbing.accumulation_dtype(logits.dtype)
    size = batch if return_logprobs else 0
    return (logits.new_empty(batch, dtype=torch.int64), logits.new_empty(size, dtype=accumulation),
            logits.new_empty(size, dtype=accumulation))


def _not_differentiable(ctx, *grads):
    raise RuntimeError("tilted_sample: the sampled tokens and their log-probs are not differentiable; for "
                       "differentiable log-probs use tilted_logits(...).log_softmax(-1)")


torch.library.register_autograd("moafast::tilted_sample", _not_differentiable)


@torch.library.impl(library, "tilted_logits", "CPU")
@torch.library.impl(library, "tilted_logits", "CUDA")
def _tilted_logits(logits, values, coefficients, candidates, inverse_temperature, top_k, top_p, min_p):
    empty = torch.empty(0, dtype=torch.int64)
    return _run(logits, values, coefficients, candidates, empty, empty, empty, inverse_temperature, top_k, top_p,
                min_p, sample=False, return_logprobs=False, processed=True)[3]


@torch.library.register_fake("moafast::tilted_logits")
def _tilted_logits_fake(logits, values, coefficients, candidates, inverse_temperature, top_k, top_p, min_p):
    width = _check_problem(logits, values, coefficients, candidates, top_k, top_p, min_p)
    return logits.new_empty(logits.shape[0], width, dtype=plumbing.accumulation_dtype(logits.dtype))


def _tilted_logits_setup(ctx, inputs, output) -> None:
    logits, values, coefficients, candidates, inverse_temperature, *_ = inputs
    ctx.save_for_backward(values, coefficients, candidates, output)
    ctx.inverse_temperature = inverse_temperature
    ctx.logits_shape, ctx.logits_dtype = logits.shape, logits.dtype


def _tilted_logits_backward(ctx, grad):
    """t = a * l + sum_k c_k Q_k on the kept entries (filtered entries are constant -inf)."""
    values, coefficients, candidates, output = ctx.saved_tensors
    kept_grad = torch.where(output > float("-inf"), grad, torch.zeros_like(grad))
    grad_logits = grad_values = grad_coefficients = None
    if ctx.needs_input_grad[0]:
        scaled = kept_grad * ctx.inverse_temperature
        if candidates is None:
            grad_logits = scaled.to(ctx.logits_dtype)
        else:
            grad_logits = scaled.new_zeros(ctx.logits_shape).scatter_add_(1, candidates.long(), scaled)
            grad_logits = grad_logits.to(ctx.logits_dtype)
    if ctx.needs_input_grad[1]:
        grad_values = (coefficients.t()[:, :, None].to(kept_grad.dtype) * kept_grad[None]).to(values.dtype)
    if ctx.needs_input_grad[2]:
        grad_coefficients = torch.einsum("bv,kbv->bk", kept_grad.double(), values.double()).to(coefficients.dtype)
    return grad_logits, grad_values, grad_coefficients, None, None, None, None, None


torch.library.register_autograd("moafast::tilted_logits", _tilted_logits_backward, setup_context=_tilted_logits_setup)


_TiltedLogitsUnderTransforms = plumbing.function_for_transforms(
    "TiltedLogits", torch.ops.moafast.tilted_logits, _tilted_logits_setup, _tilted_logits_backward)


def tilted_logits(logits: torch.Tensor, values: torch.Tensor, weights: torch.Tensor, beta: float | torch.Tensor,
                  *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0,
                  candidates: torch.Tensor | None = None, temperature_before_tilt: bool = False) -> torch.Tensor:
    """The processed logits ``t`` (see the module docstring), filtered entries at ``-inf``.

    Args:
        logits: ``[B, V]`` base logits (float32, bfloat16, float16 or float64).
        values: ``[K, B, V]`` per-objective scores (dense) or ``[K, B, k]`` for ``candidates``.
        weights: ``[B, K]`` per-request objective weights, used as given.
        beta: tilt strength, a float or ``[B]``.
        candidates: ``[B, k]`` distinct token ids (candidate mode) or None (dense).

    Returns:
        ``[B, V]`` (dense) or ``[B, k]`` (candidate mode, aligned with ``candidates``), float32 (float64 for
        float64 logits). Differentiable in ``logits``, ``values``, ``weights`` and ``beta`` on the kept entries,
        with autograd and under torch.func transforms (``vmap`` by PyTorch's per-element loop).
    """
    batch, _ = check_logits(logits)
    check_temperature(temperature)
    coefficients = coefficients_of(weights, beta, batch, temperature, temperature_before_tilt)
    op = torch.ops.moafast.tilted_logits
    if plumbing.functorch_transform_active():
        op = _TiltedLogitsUnderTransforms.apply
    return op(logits, values, coefficients, candidates, 1.0 / temperature, top_k, top_p, min_p)


def tilted_sample(logits: torch.Tensor, values: torch.Tensor, weights: torch.Tensor, beta: float | torch.Tensor,
                  *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, min_p: float = 0.0,
                  candidates: torch.Tensor | None = None, temperature_before_tilt: bool = False,
                  seed: int | torch.Tensor | None = None, offset: int | torch.Tensor = 0,
                  generator: torch.Generator | None = None, return_logprobs: bool = False,
                  base_logsumexp: torch.Tensor | None = None
                  ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draws one token per row from the tilted, filtered distribution (see the module docstring).

    Args:
        logits, values, weights, beta, candidates: as in :func:`tilted_logits`.
        seed: an int (row b draws from stream (seed, b)), a ``[B]`` tensor of per-request seeds, or None (a
            seed is drawn from ``generator``, or from torch's default generator).
        offset: the decoding step, an int or ``[B]``; advance it every step.
        return_logprobs: also return each token's log-probability under the tilted, filtered distribution and
            under the base distribution ``log_softmax(logits / T)`` over the whole vocabulary (for KL tracking).
        base_logsumexp: ``[B]`` ``logsumexp(logits / T)`` when already known (the third output of
            :func:`topk_with_logsumexp`): the base log-probs then need no second read of the logits.

    Returns:
        ``tokens`` ``[B]`` int64 token ids, or ``(tokens, tilted_logprobs, base_logprobs)``.
    """
    batch, _ = check_logits(logits)
    check_temperature(temperature)
    coefficients = coefficients_of(weights, beta, batch, temperature, temperature_before_tilt)
    seeds, offsets, streams = random_keys(batch, seed, offset, generator, logits.device)
    arguments = (logits, values, coefficients, candidates, seeds, offsets, streams, 1.0 / temperature, top_k, top_p,
                 min_p, return_logprobs, base_logsumexp)
    tensors = (logits, values, coefficients, candidates, seeds, offsets, streams, base_logsumexp)
    direct = not plumbing.differentiated(*tensors) and plumbing.kernel_may_run_directly(*tensors)
    tokens, tilted, base = (_tilted_sample if direct else torch.ops.moafast.tilted_sample)(*arguments)
    return (tokens, tilted, base) if return_logprobs else tokens
