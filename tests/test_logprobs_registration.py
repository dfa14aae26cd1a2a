"""torch.library registration of logprobs_from_logits: opcheck, torch.compile and input validation."""

from __future__ import annotations

import pytest
import torch

from moafast import reference
from moafast.ops import logprobs_from_logits
from moafast.testing import assert_close


def _opcheck_samples():
    targets = torch.randint(0, 123, (47,))
    targets[::4] = -100
    yield torch.randn(47, 123, requires_grad=True), targets, -100
    yield torch.randn(5, 7, dtype=torch.float64, requires_grad=True), torch.randint(0, 7, (5,)), -100
    yield torch.randn(8, 33).to(torch.bfloat16).requires_grad_(), torch.randint(0, 33, (8,), dtype=torch.int32), 3
    yield torch.randn(30, 20).t().requires_grad_(), torch.randint(0, 30, (20,)), -100


@pytest.mark.parametrize("sample", list(_opcheck_samples()), ids=["f32", "f64", "bf16-int32", "transposed"])
def test_opcheck(sample) -> None:
    torch.library.opcheck(torch.ops.moafast.logprobs_from_logits.default, sample)


def test_opcheck_backward_op() -> None:
    logits = torch.randn(9, 31)
    targets = torch.randint(0, 31, (9,))
    logp, lse = torch.ops.moafast.logprobs_from_logits(logits, targets, -100)
    args = (torch.randn(9), torch.randn(9), logits, targets, lse, -100)
    torch.library.opcheck(torch.ops.moafast.logprobs_from_logits_backward.default, args)


@pytest.mark.parametrize("dynamic", [False, True])
def test_torch_compile_fullgraph_forward_and_backward(dynamic: bool) -> None:
    def loss_fn(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = hidden @ weight.t()
        logp, lse = logprobs_from_logits(logits, targets)
        return -(logp.sum() + 0.01 * lse.square().sum())

    compiled = torch.compile(loss_fn, fullgraph=True, dynamic=dynamic, backend="inductor")
    for rows in (13, 29):
        hidden = torch.randn(rows, 16, requires_grad=True)
        weight = torch.randn(50, 16, requires_grad=True)
        targets = torch.randint(0, 50, (rows,))
        targets[0] = -100
        loss = compiled(hidden, weight, targets)
        grads = torch.autograd.grad(loss, (hidden, weight))

        def reference_loss(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            logp, lse = reference.logprobs_from_logits(h @ w.t(), targets)
            return -(logp.sum() + 0.01 * lse.square().sum())

        h64, w64 = hidden.double().detach().requires_grad_(), weight.double().detach().requires_grad_()
        expected = reference_loss(h64, w64)
        expected_grads = torch.autograd.grad(expected, (h64, w64))
        assert_close(loss, expected, atol=1e-3, rtol=1e-5, name="loss")
        for grad, expected_grad in zip(grads, expected_grads):
            assert_close(grad, expected_grad, atol=1e-4, rtol=1e-4, name="grad")


@pytest.mark.parametrize(
    ("logits", "targets", "error", "message"),
    [
        (torch.randn(4, 5).long(), torch.zeros(4, dtype=torch.long), TypeError, "logits: expected dtype float32"),
        (torch.randn(4, 5), torch.zeros(4), TypeError, "targets: expected dtype int64, int32"),
        (torch.randn(4, 5), torch.zeros(3, dtype=torch.long), ValueError, r"targets: expected shape"),
        (torch.randn(4, 0), torch.zeros(4, dtype=torch.long), ValueError, "empty vocabulary"),
        (torch.randn(4, 5), [0, 1, 2, 3], TypeError, "targets: expected a torch.Tensor"),
        (torch.randn(4, 5), torch.tensor([0, 1, 5, 2]), IndexError, r"targets\[2\] = 5 is outside \[0, 5\)"),
        (torch.randn(4, 5), torch.tensor([0, -1, 2, 2]), IndexError, r"targets\[1\] = -1"),
    ],
)
def test_bad_input_raises_a_clear_error(logits, targets, error, message) -> None:
    with pytest.raises(error, match=message):
        logprobs_from_logits(logits, targets)


def test_op_level_shape_checks() -> None:
    with pytest.raises(ValueError, match=r"logits: expected a 2-D tensor \[N, V\]"):
        torch.ops.moafast.logprobs_from_logits(torch.randn(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), -100)
    logits = torch.randn(4, 5)
    targets = torch.zeros(4, dtype=torch.long)
    _, lse = torch.ops.moafast.logprobs_from_logits(logits, targets, -100)
    with pytest.raises(TypeError, match="grad_logp: expected dtype float32"):
        torch.ops.moafast.logprobs_from_logits_backward(torch.randn(4).double(), None, logits, targets, lse, -100)
    with pytest.raises(ValueError, match="lse: expected shape"):
        torch.ops.moafast.logprobs_from_logits_backward(torch.randn(4), None, logits, targets, lse[:3], -100)


def test_bad_targets_raise_in_backward_op_too() -> None:
    logits = torch.randn(3, 5)
    lse = torch.zeros(3)
    with pytest.raises(IndexError, match=r"targets\[0\] = 9"):
        torch.ops.moafast.logprobs_from_logits_backward(torch.randn(3), None, logits, torch.tensor([9, 0, 0]), lse, -100)


def test_fake_kernel_reports_bad_shapes_at_trace_time() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        logits = torch.empty(4, 5)
        logp, lse = torch.ops.moafast.logprobs_from_logits(logits, torch.empty(4, dtype=torch.long), -100)
        assert logp.shape == (4,) and lse.dtype == torch.float32
        with pytest.raises(ValueError, match="targets: expected shape"):
            torch.ops.moafast.logprobs_from_logits(logits, torch.empty(6, dtype=torch.long), -100)
