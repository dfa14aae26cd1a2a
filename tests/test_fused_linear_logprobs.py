"""fused_linear_logprobs (chunked GEMM + kernel) against the materialised-logits reference."""

from __future__ import annotations

import pytest
import torch

from moafast import reference
from moafast.ops import fused_linear_logprobs
from moafast.testing import assert_close

N, H, V, K = 47, 31, 123, 3


def make(dtype=torch.float64, heads=K, with_bias=True, ignore_index=-100):
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(N, H, generator=g, dtype=torch.float64).to(dtype)
    shape = (heads, V, H) if heads else (V, H)
    weight = (torch.randn(shape, generator=g, dtype=torch.float64) / H**0.5).to(dtype)
    bias = torch.randn(shape[:-1], generator=g, dtype=torch.float64).to(dtype) if with_bias else None
    targets = torch.randint(0, V, (N,), generator=g)
    targets[::4] = ignore_index
    head_index = torch.randint(0, heads or 1, (N,), generator=g)
    return hidden, weight, bias, targets, head_index


MODES = ["single", "routed", "all_heads"]


def call(fn, mode, hidden, weight, bias, targets, head_index, **kwargs):
    if mode == "single":
        weight, bias, head_index = weight[0], None if bias is None else bias[0], None
    elif mode == "all_heads":
        head_index = None
    return fn(hidden, weight, targets, head_index, bias, **kwargs)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("chunk_size", [None, 5])
@pytest.mark.parametrize("with_bias", [True, False])
def test_values_and_gradients_float64(mode, chunk_size, with_bias) -> None:
    hidden, weight, bias, targets, head_index = make(with_bias=with_bias)
    leaves = [t.clone().requires_grad_() for t in (hidden, weight) + ((bias,) if with_bias else ())]
    ref_leaves = [t.clone().requires_grad_() for t in (hidden, weight) + ((bias,) if with_bias else ())]
    ours = call(fused_linear_logprobs, mode, leaves[0], leaves[1], leaves[2] if with_bias else None, targets,
                head_index, chunk_size=chunk_size)
    theirs = call(reference.fused_linear_logprobs, mode, ref_leaves[0], ref_leaves[1],
                  ref_leaves[2] if with_bias else None, targets, head_index)
    assert_close(ours[0], theirs[0], name="logp")
    assert_close(ours[1], theirs[1], name="lse")
    g = torch.Generator().manual_seed(5)
    up_logp, up_lse = torch.randn(ours[0].shape, generator=g, dtype=torch.float64), torch.randn(
        ours[0].shape, generator=g, dtype=torch.float64)
    torch.autograd.backward(ours, (up_logp, up_lse))
    torch.autograd.backward(theirs, (up_logp, up_lse))
    for name, a, b in zip(("d_hidden", "d_weight", "d_bias"), leaves, ref_leaves):
        assert_close(a.grad, b.grad, name=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_routed(dtype) -> None:
    hidden, weight, bias, targets, head_index = make(dtype=dtype)
    logp, lse = fused_linear_logprobs(hidden, weight, targets, head_index, bias, chunk_size=7)
    exact, _ = reference.fused_linear_logprobs(hidden.double(), weight.double(), targets, head_index, bias.double())
    # float32 accumulation of the logits GEMM in the input dtype: the error is the GEMM's, not the kernel's
    tol = 1e-4 if dtype == torch.float32 else 0.15
    assert_close(logp, exact, atol=tol, rtol=tol, name=f"logp {dtype}")
    assert logp.dtype == torch.float32


def test_routed_equals_all_heads_then_select() -> None:
    hidden, weight, bias, targets, head_index = make(dtype=torch.float32)
    routed, _ = fused_linear_logprobs(hidden, weight, targets, head_index, bias)
    every, _ = fused_linear_logprobs(hidden, weight, targets, None, bias)
    assert every.shape == (K, N)
    selected = every[head_index, torch.arange(N)]
    # equal up to the GEMM's blocking, which depends on how many rows a head's chunk holds
    assert_close(routed, selected, atol=1e-5, rtol=1e-6, name="routed vs all heads")


def test_ignored_tokens_get_zero_and_no_gradient() -> None:
    hidden, weight, bias, targets, head_index = make()
    hidden.requires_grad_()
    logp, lse = fused_linear_logprobs(hidden, weight, targets, head_index, bias)
    ignored = targets == -100
    assert (logp[ignored] == 0).all() and (lse[ignored] == 0).all()
    logp.sum().backward()
    assert (hidden.grad[ignored] == 0).all()


def test_opcheck_and_compile() -> None:
    hidden, weight, bias, targets, head_index = make(dtype=torch.float32)
    for args in ((hidden.requires_grad_(), weight.requires_grad_(), targets, head_index, bias, -100, 6),
                 (hidden, weight, targets, None, None, -100, 0)):
        torch.library.opcheck(torch.ops.moafast.fused_linear_logprobs.default, args)
    compiled = torch.compile(lambda h, w: fused_linear_logprobs(h, w, targets, head_index)[0].sum(), fullgraph=True)
    loss = compiled(hidden, weight)
    loss.backward()
    assert torch.isfinite(hidden.grad).all() and torch.isfinite(weight.grad).all()


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"weight": torch.randn(2, 2, 5, 31)}, ValueError, r"weight: expected \[V, H\] or \[K, V, H\]"),
        ({"weight": torch.randn(K, V, 30)}, ValueError, "weight: expected last dimension H"),
        ({"head_index": torch.full((N,), 3)}, IndexError, r"head_index\[1\] = 3 is outside \[0, 3\)"),
        ({"head_index": torch.zeros(N - 1, dtype=torch.long)}, ValueError, "head_index: expected shape"),
        ({"bias": torch.randn(V)}, ValueError, "bias: expected shape"),
        ({"targets": torch.full((N,), V)}, IndexError, r"targets\[0\] = 123 is outside \[0, 123\)"),
        ({"weight": torch.randn(K, V, H, dtype=torch.float64)}, TypeError, "weight: expected the dtype of hidden"),
    ],
)
def test_bad_input(change, error, message) -> None:
    hidden, weight, bias, targets, head_index = make(dtype=torch.float32)
    args = {"hidden": hidden, "weight": weight, "targets": targets, "head_index": head_index, "bias": bias}
    args.update(change)
    with pytest.raises(error, match=message):
        fused_linear_logprobs(**args)


def test_head_with_all_negative_infinity_logits() -> None:
    hidden, weight, bias, targets, head_index = make()
    bias[1] = float("-inf")  # every logit of head 1 is -inf
    hidden.requires_grad_()
    logp, lse = fused_linear_logprobs(hidden, weight, targets, head_index, bias, chunk_size=4)
    dead = (head_index == 1) & (targets != -100)
    assert dead.any() and (logp[dead] == float("-inf")).all() and (lse[dead] == float("-inf")).all()
    torch.where(dead, torch.zeros_like(logp), logp).sum().backward()
    assert torch.isfinite(hidden.grad).all() and (hidden.grad[dead] == 0).all()
