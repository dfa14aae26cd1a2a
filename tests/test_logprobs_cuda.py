"""logprobs_from_logits on CUDA against the float64 reference. Runs only where a GPU is usable
(bench/gpu_check.sh); elsewhere these tests are reported as skipped with the reason."""

from __future__ import annotations

import pytest
import torch

from moafast import reference
from moafast.ops import logprobs_from_logits
from moafast.testing import assert_close, assert_error_within_factor

pytestmark = pytest.mark.cuda

DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
SHAPES = [(1, 1), (47, 123), (64, 2049), (3, 128256)]


def _inputs(rows: int, vocab: int, dtype: torch.dtype):
    logits = (torch.randn(rows, vocab, dtype=torch.float64) * 4).to(dtype).cuda()
    targets = torch.randint(0, vocab, (rows,)).cuda()
    targets[::5] = -100
    return logits, targets


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_and_backward_match_reference(shape, dtype) -> None:
    logits, targets = _inputs(*shape, dtype)
    accumulation = torch.float64 if dtype == torch.float64 else torch.float32
    grad_logp = torch.randn(shape[0], device="cuda", dtype=accumulation)
    grad_lse = torch.randn(shape[0], device="cuda", dtype=accumulation)
    ours = logits.clone().requires_grad_()
    logp, lse = logprobs_from_logits(ours, targets)
    (logp * grad_logp + lse * grad_lse).sum().backward()
    exact = logits.double().requires_grad_()
    expected_logp, expected_lse = reference.logprobs_from_logits(exact, targets)
    (expected_logp * grad_logp.double() + expected_lse * grad_lse.double()).sum().backward()
    assert_close(logp, expected_logp, dtype=accumulation, name="logp")
    assert_close(lse, expected_lse, dtype=accumulation, name="lse")
    if dtype in (torch.float32, torch.float64):
        assert_close(ours.grad, exact.grad, dtype=dtype, name="grad")
    else:
        pytorch = logits.clone().requires_grad_()
        torch_logp = pytorch.log_softmax(-1).gather(-1, targets.clamp(min=0)[:, None]).squeeze(-1)
        torch_lse = pytorch.logsumexp(-1)
        valid = (targets != -100).to(dtype)
        ((torch_logp * grad_logp.to(dtype) + torch_lse * grad_lse.to(dtype)) * valid).sum().backward()
        assert_error_within_factor(ours.grad, pytorch.grad, exact.grad, name=f"grad {dtype}")


def test_masks_and_policies_on_cuda() -> None:
    logits, targets = _inputs(6, 3001, torch.float32)
    targets[:] = torch.arange(6, device="cuda")
    logits[0, ::2] = float("-inf")
    logits[1] = float("-inf")
    logits[2, 7] = float("nan")
    targets[3] = 3001  # out of range: NaN on CUDA
    logp, lse = logprobs_from_logits(logits, targets)
    assert logp[1] == float("-inf") and lse[1] == float("-inf")
    assert logp[2].isnan() and logp[3].isnan()
    expected_logp, _ = reference.logprobs_from_logits(logits[[0, 4, 5]].double(), targets[[0, 4, 5]])
    assert_close(logp[[0, 4, 5]], expected_logp, dtype=torch.float32, name="logp")


def test_runs_on_the_current_stream_and_compiles() -> None:
    logits, targets = _inputs(33, 999, torch.float32)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        logp, _ = logprobs_from_logits(logits, targets)
    stream.synchronize()
    expected, _ = reference.logprobs_from_logits(logits.double(), targets)
    assert_close(logp, expected, dtype=torch.float32, name="logp on a side stream")
    compiled = torch.compile(lambda x, t: logprobs_from_logits(x, t)[0].sum(), fullgraph=True)
    x = logits.clone().requires_grad_()
    compiled(x, targets).backward()
    assert torch.isfinite(x.grad).all()
    torch.library.opcheck(torch.ops.moafast.logprobs_from_logits.default, (logits.requires_grad_(), targets, -100))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_linear_logprobs_routed_on_cuda(dtype) -> None:
    from moafast.ops import fused_linear_logprobs

    hidden = torch.randn(257, 64, device="cuda", dtype=dtype, requires_grad=True)
    weight = (torch.randn(3, 1000, 64, device="cuda") / 8).to(dtype).requires_grad_()
    targets = torch.randint(0, 1000, (257,), device="cuda")
    targets[::7] = -100
    head_index = torch.randint(0, 3, (257,), device="cuda")
    logp, _ = fused_linear_logprobs(hidden, weight, targets, head_index, chunk_size=50)
    logp.sum().backward()
    exact_h = hidden.detach().double().requires_grad_()
    exact_w = weight.detach().double().requires_grad_()
    expected, _ = reference.fused_linear_logprobs(exact_h, exact_w, targets, head_index)
    expected.sum().backward()
    tol = 1e-3 if dtype == torch.float32 else 0.2
    assert_close(logp, expected, atol=tol, rtol=tol, name="logp")
    assert_close(hidden.grad, exact_h.grad, atol=tol, rtol=tol, name="d_hidden")
    assert_close(weight.grad, exact_w.grad, atol=tol, rtol=tol, name="d_weight")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_linear_dpo_loss_on_cuda_matches_cpu_float64(dtype) -> None:
    from moafast.losses import fused_linear_dpo_loss

    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(6, 33, 64, generator=g)
    weight = torch.randn(2, 1000, 64, generator=g) / 8
    labels = torch.randint(0, 1000, (6, 33), generator=g)
    labels[:, :5] = -100
    head_index = torch.tensor([0, 1, 1])
    ref = torch.randn(2, 3, generator=g)
    outputs = {}
    for device, kind in (("cuda", dtype), ("cpu", torch.float64)):
        h = hidden.to(device, kind).requires_grad_()
        w = weight.to(device, kind).requires_grad_()
        accumulation = torch.float64 if kind == torch.float64 else torch.float32
        loss, _, _ = fused_linear_dpo_loss(h, w, labels.to(device), head_index.to(device),
                                           ref[0].to(device, accumulation), ref[1].to(device, accumulation),
                                           beta=0.2, chunk_size=40)
        loss.backward()
        outputs[device] = (loss, h.grad, w.grad)
    tol = 1e-3 if dtype == torch.float32 else 0.05
    for name, got, want in zip(("loss", "d_hidden", "d_weight"), outputs["cuda"], outputs["cpu"]):
        assert_close(got.cpu(), want, atol=tol, rtol=tol, name=name)
