"""logprobs_from_logits (CPU kernels) against the plain-PyTorch reference."""

from __future__ import annotations

import pytest
import torch

from moafast import reference
from moafast.ops import logprobs_from_logits
from moafast.testing import assert_close, assert_error_within_factor

NEG_INF = float("-inf")
SHAPES = [(1, 1), (3, 2), (47, 123), (64, 2049), (7, 5000)]
DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]


def make_inputs(rows: int, vocab: int, dtype: torch.dtype, *, ignore_every: int = 5, scale: float = 4.0):
    logits = (torch.randn(rows, vocab, dtype=torch.float64) * scale).to(dtype)
    targets = torch.randint(0, vocab, (rows,))
    if ignore_every:
        targets[::ignore_every] = -100
    return logits, targets


def reference_on(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100):
    """The reference in float64 on exactly the values the kernel saw."""
    return reference.logprobs_from_logits(logits.to(torch.float64), targets, ignore_index)


def accumulation(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_matches_reference(cpu_isa: str, shape: tuple[int, int], dtype: torch.dtype) -> None:
    logits, targets = make_inputs(*shape, dtype)
    logp, lse = logprobs_from_logits(logits, targets)
    expected_logp, expected_lse = reference_on(logits, targets)
    assert logp.dtype == lse.dtype == accumulation(dtype)
    # Inputs are exact in every dtype; only the accumulation precision matters.
    tol_dtype = accumulation(dtype)
    assert_close(logp, expected_logp, dtype=tol_dtype, name=f"logp[{cpu_isa}]")
    assert_close(lse, expected_lse, dtype=tol_dtype, name=f"lse[{cpu_isa}]")
    ignored = targets == -100
    assert (logp[ignored] == 0).all() and (lse[ignored] == 0).all()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_backward_matches_reference(cpu_isa: str, shape: tuple[int, int], dtype: torch.dtype) -> None:
    logits, targets = make_inputs(*shape, dtype)
    grad_logp, grad_lse = torch.randn(shape[0], dtype=dtype), torch.randn(shape[0], dtype=dtype)
    ours = logits.clone().requires_grad_()
    logp, lse = logprobs_from_logits(ours, targets)
    (logp * grad_logp + lse * grad_lse).sum().backward()
    theirs = logits.to(torch.float64).requires_grad_()
    expected_logp, expected_lse = reference.logprobs_from_logits(theirs, targets)
    (expected_logp * grad_logp.double() + expected_lse * grad_lse.double()).sum().backward()
    assert_close(ours.grad, theirs.grad, dtype=dtype, name=f"grad_logits[{cpu_isa}]")
    assert (ours.grad[targets == -100] == 0).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_gradient_error_at_most_twice_pytorch(cpu_isa: str, dtype: torch.dtype) -> None:
    logits, targets = make_inputs(64, 2049, dtype, ignore_every=0)
    upstream = torch.randn(64, dtype=torch.float32)

    ours = logits.clone().requires_grad_()
    logprobs_from_logits(ours, targets)[0].backward(upstream)

    exact = logits.to(torch.float64).requires_grad_()
    exact.log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1).backward(upstream.double())

    pytorch = logits.clone().requires_grad_()
    pytorch.log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1).backward(upstream.to(dtype))

    assert ours.grad.dtype == dtype
    assert_error_within_factor(ours.grad, pytorch.grad, exact.grad, name=f"grad_logits {dtype}")


def test_gradcheck_float64() -> None:
    logits, targets = make_inputs(6, 9, torch.float64, ignore_every=4)
    logits.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: logprobs_from_logits(x, targets), (logits,))


EDGE_DTYPES = [torch.float32, torch.bfloat16]  # bfloat16 entries are read two per 32-bit word in the forward


@pytest.mark.parametrize("dtype", EDGE_DTYPES)
def test_negative_infinity_masks(cpu_isa: str, dtype: torch.dtype) -> None:
    logits, targets = make_inputs(9, 3001, dtype, ignore_every=0)
    logits[0, ::2] = NEG_INF  # masked half
    logits[1, :] = NEG_INF  # no mass at all
    logits[2, :2500] = NEG_INF  # an all -inf prefix longer than one block
    logits[3, targets[3]] = NEG_INF  # target impossible
    logits[4, 1:] = NEG_INF  # one finite logit
    targets[4] = 0
    logits.requires_grad_()
    logp, lse = logprobs_from_logits(logits, targets)
    expected_logp, expected_lse = reference_on(logits.detach(), targets)
    assert_close(logp, expected_logp, dtype=accumulation(dtype), name="logp")
    assert_close(lse, expected_lse, dtype=accumulation(dtype), name="lse")
    assert logp[1] == NEG_INF and lse[1] == NEG_INF
    assert logp[3] == NEG_INF and torch.isfinite(lse[3])
    assert logp[4] == 0
    finite_logp = torch.where(torch.isfinite(logp), logp, torch.zeros_like(logp))
    finite_logp.sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[1] == 0).all()
    assert (logits.grad[0, ::2] == 0).all()


@pytest.mark.parametrize("dtype", EDGE_DTYPES)
def test_nan_and_positive_infinity_poison_only_their_row(cpu_isa: str, dtype: torch.dtype) -> None:
    logits, targets = make_inputs(5, 100, dtype, ignore_every=0)
    logits[1, 17] = float("nan")
    logits[2, 5] = float("inf")
    logits[4, 18] = float("nan")  # the other half of a 32-bit word than row 1's
    logp, lse = logprobs_from_logits(logits, targets)
    assert logp[1].isnan() and lse[1].isnan()
    assert logp[2].isnan() and lse[2].isnan()
    assert logp[4].isnan() and lse[4].isnan()
    assert torch.isfinite(logp[[0, 3]]).all()


@pytest.mark.parametrize("dtype", EDGE_DTYPES)
def test_non_contiguous_inputs(cpu_isa: str, dtype: torch.dtype) -> None:
    base = torch.randn(40, 601).to(dtype)
    row_strided = base[::2, 51:400]  # row stride 1202, unit element stride, rows starting at odd elements
    column_strided = base[:20, ::3]  # element stride 3: copied to unit stride
    transposed = torch.randn(123, 20).to(dtype).t()
    for logits in (row_strided, column_strided, transposed):
        targets = torch.randint(0, logits.shape[1], (logits.shape[0] * 2,))[::2]
        logp, lse = logprobs_from_logits(logits, targets)
        expected_logp, expected_lse = reference_on(logits, targets)
        assert_close(logp, expected_logp, dtype=torch.float32, name="logp")
        assert_close(lse, expected_lse, dtype=torch.float32, name="lse")


def test_int32_targets_custom_ignore_index_and_leading_dims() -> None:
    logits = torch.randn(2, 5, 77)
    targets = torch.randint(0, 77, (2, 5), dtype=torch.int32)
    targets[0, 1] = 7
    logp, lse = logprobs_from_logits(logits, targets, ignore_index=7)
    expected_logp, expected_lse = reference_on(logits, targets.long(), ignore_index=7)
    assert logp.shape == lse.shape == (2, 5)
    assert_close(logp, expected_logp, dtype=torch.float32, name="logp")
    assert_close(lse, expected_lse, dtype=torch.float32, name="lse")
    assert logp[0, 1] == 0


def test_empty_batch() -> None:
    logits = torch.randn(0, 10, requires_grad=True)
    logp, lse = logprobs_from_logits(logits, torch.zeros(0, dtype=torch.long))
    assert logp.shape == lse.shape == (0,)
    logp.sum().backward()
    assert logits.grad.shape == (0, 10)


def test_results_do_not_depend_on_thread_count() -> None:
    logits, targets = make_inputs(33, 4099, torch.float32)
    logits.requires_grad_()
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            logp, lse = logprobs_from_logits(logits, targets)
            (grad,) = torch.autograd.grad(logp.sum() + lse.sum(), logits)
            results.append((logp, lse, grad))
    finally:
        torch.set_num_threads(previous)
    for one, two in zip(results[0], results[1]):
        assert torch.equal(one, two)


def test_isa_builds_agree_bitwise_on_float64_inputs() -> None:
    """Every ISA build runs the same formulas: float64 must agree to rounding of the summation order."""
    from moafast._ext import extension

    logits, targets = make_inputs(16, 3000, torch.float32)
    outputs = []
    for isa in extension().cpu_isas_usable():
        extension().set_cpu_isa(isa)
        outputs.append(logprobs_from_logits(logits, targets))
    extension().set_cpu_isa("auto")
    for logp, lse in outputs[1:]:
        assert_close(logp, outputs[0][0], atol=1e-5, rtol=1e-6, name="logp across ISAs")
        assert_close(lse, outputs[0][1], atol=1e-5, rtol=1e-6, name="lse across ISAs")


@pytest.mark.parametrize("dtype", EDGE_DTYPES)
def test_rows_whose_max_jumps_between_blocks(cpu_isa: str, dtype: torch.dtype) -> None:
    """Later blocks far above the running max (the re-sweep path) and a -inf first logit."""
    logits, targets = make_inputs(6, 20000, dtype, ignore_every=0, scale=1.0)
    logits[0, 15000] = 90.0  # a jump of ~90 in a late block
    logits[1, 9000:9100] = 30.0  # a moderate jump, summed in the running frame
    logits[2, 0] = float("-inf")  # no finite reference in the first logit
    logits[3, :8192] = -200.0  # first block far below the rest
    logits[4] = torch.linspace(-300, 300, 20000)  # max rising through every block
    logits[5, 15001] = 200.0  # a jump past exp's range, in the odd half of a 32-bit word
    logp, lse = logprobs_from_logits(logits, targets)
    expected_logp, expected_lse = reference_on(logits, targets)
    assert_close(logp, expected_logp, dtype=accumulation(dtype), name="logp")
    assert_close(lse, expected_lse, dtype=accumulation(dtype), name="lse")
