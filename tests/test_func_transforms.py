"""torch.func transforms (grad, vmap, per-example gradients, jacrev) through every differentiable op, against
plain autograd on the same ops and against PyTorch references, in float64."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch.func import grad, jacrev, vmap

from moafast.ops import (fused_linear_logprobs, hypervolume, hypervolume_contributions, logprobs_from_logits,
                         tilted_logits)
from moafast.testing import assert_close

F64 = torch.float64




def count_calls(monkeypatch: pytest.MonkeyPatch, module: str, name: str) -> list[int]:
    """Counts the calls of ``module.name`` (a function the op's kernel wrapper looks up when it runs): under vmap,
    one call for the whole batch shows the batching rule at work, one per element PyTorch's fallback loop."""
    target = importlib.import_module(module)
    original, calls = getattr(target, name), []

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, counted)
    return calls


def test_logprobs_grad_vmap_and_jacrev(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 11, dtype=F64, generator=generator)
    targets = torch.randint(0, 11, (3, 5), generator=generator)
    targets[1, 2] = -100

    calls = count_calls(monkeypatch, "moafast.ops.logprobs", "_check_inputs")
    logp, lse = vmap(logprobs_from_logits)(logits, targets)
    assert len(calls) == 1, f"the kernel ran {len(calls)} times for one vmapped call"
    expected_logp, expected_lse = logprobs_from_logits(logits, targets)
    assert_close(logp, expected_logp, name="vmap logp")
    assert_close(lse, expected_lse, name="vmap lse")
    shared = vmap(lambda rows: logprobs_from_logits(rows, targets[0]))(logits)  # targets not vmapped
    assert_close(shared[0], logprobs_from_logits(logits, targets[0].expand(3, 5))[0], name="vmap, shared targets")

    def loss(rows: torch.Tensor, row_targets: torch.Tensor) -> torch.Tensor:
        row_logp, row_lse = logprobs_from_logits(rows, row_targets)
        return row_logp.sum() + 0.5 * row_lse.sum()

    per_example = vmap(grad(loss))(logits, targets)
    leaf = logits.clone().requires_grad_()
    loss(leaf, targets).backward()
    assert_close(per_example, leaf.grad, name="per-example gradients")

    rows, row_targets = logits[0], targets[0]
    jacobian = jacrev(lambda x: logprobs_from_logits(x, row_targets)[0])(rows)
    kept = row_targets.clamp(min=0)
    reference = torch.autograd.functional.jacobian(
        lambda x: x.log_softmax(-1).gather(-1, kept[:, None]).squeeze(-1) * (row_targets != -100), rows)
    assert_close(jacobian, reference, name="jacrev logp")


def test_hypervolume_grad_in_points_and_ref() -> None:
    generator = torch.Generator().manual_seed(1)
    points = torch.rand(9, 3, dtype=F64, generator=generator)
    ref = torch.full((3,), 1.2, dtype=F64)
    leaf_points, leaf_ref = points.clone().requires_grad_(), ref.clone().requires_grad_()
    hypervolume(leaf_points, leaf_ref).backward()
    assert_close(grad(lambda x: hypervolume(x, ref))(points), leaf_points.grad, name="grad points")
    assert_close(grad(lambda r: hypervolume(points, r))(ref), leaf_ref.grad, name="grad ref")


def test_hypervolume_under_vmap(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = torch.Generator().manual_seed(2)
    points = torch.rand(5, 8, 3, dtype=F64, generator=generator)
    refs = 1.0 + torch.rand(5, 3, dtype=F64, generator=generator)
    shared = torch.ones(3, dtype=F64)
    mask = torch.rand(5, 8, generator=generator) > 0.3

    calls = count_calls(monkeypatch, "moafast.ops.hypervolume", "_run")
    vmapped = vmap(hypervolume)(points, refs)
    assert len(calls) == 1, f"the kernel ran {len(calls)} times for one vmapped call"
    assert_close(vmapped, hypervolume(points, refs), name="one ref per call")
    assert_close(vmap(lambda x: hypervolume(x, shared))(points), hypervolume(points, shared), name="shared ref")
    assert_close(vmap(lambda x, m: hypervolume(x, shared, mask=m))(points, mask),
                 hypervolume(points, shared, mask=mask), name="mask")
    assert_close(vmap(lambda x: hypervolume_contributions(x, shared))(points),
                 hypervolume_contributions(points, shared), name="contributions")
    nested = torch.rand(4, 5, 8, 3, dtype=F64, generator=generator)  # each call holds 5 sets sharing its ref
    assert_close(vmap(hypervolume)(nested, refs[:4]), hypervolume(nested, refs[:4, None].expand(4, 5, 3)),
                 name="sets within each call")


def test_hypervolume_per_set_gradients_and_jacobian() -> None:
    generator = torch.Generator().manual_seed(3)
    points = torch.rand(4, 8, 3, dtype=F64, generator=generator)
    refs = 1.0 + torch.rand(4, 3, dtype=F64, generator=generator)
    leaf = points.clone().requires_grad_()
    hypervolume(leaf, refs).sum().backward()
    assert_close(vmap(grad(hypervolume))(points, refs), leaf.grad, name="per-set gradients")

    jacobian = jacrev(lambda x: hypervolume(x, refs))(points)  # [4 sets, 4 sets, 8, 3]: block diagonal
    for i in range(4):
        for j in range(4):
            expected = leaf.grad[i] if i == j else torch.zeros_like(leaf.grad[i])
            assert_close(jacobian[i, j], expected, name=f"jacrev block ({i}, {j})")


def test_fused_linear_logprobs_grad_and_per_example_gradients() -> None:
    generator = torch.Generator().manual_seed(4)
    hidden = torch.randn(6, 5, dtype=F64, generator=generator)
    weight = torch.randn(3, 7, 5, dtype=F64, generator=generator)  # three heads, all scored
    targets = torch.randint(0, 7, (6,), generator=generator)
    targets[2] = -100

    def loss(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        logp, lse = fused_linear_logprobs(h, w, targets)
        return logp.sum() + 0.3 * lse.sum()

    grad_hidden, grad_weight = grad(loss, argnums=(0, 1))(hidden, weight)
    leaf_hidden, leaf_weight = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    loss(leaf_hidden, leaf_weight).backward()
    assert_close(grad_hidden, leaf_hidden.grad, name="grad hidden")
    assert_close(grad_weight, leaf_weight.grad, name="grad weight")

    sequences = torch.randn(3, 6, 5, dtype=F64, generator=generator)
    sequence_targets = torch.randint(0, 7, (3, 6), generator=generator)
    per_example = vmap(grad(lambda h, t: fused_linear_logprobs(h, weight[0], t)[0].sum()))(sequences, sequence_targets)
    for i in range(3):
        leaf = sequences[i].clone().requires_grad_()
        fused_linear_logprobs(leaf, weight[0], sequence_targets[i])[0].sum().backward()
        assert_close(per_example[i], leaf.grad, name=f"per-example gradient {i}")


def test_tilted_logits_grad() -> None:
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 9, dtype=F64, generator=generator)
    values = torch.randn(3, 2, 9, dtype=F64, generator=generator)
    weights = torch.rand(2, 3, dtype=F64, generator=generator)

    def loss(l: torch.Tensor, q: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return tilted_logits(l, q, w, 0.7, temperature=0.8, top_k=5).logsumexp(-1).sum()

    grads = grad(loss, argnums=(0, 1, 2))(logits, values, weights)
    leaves = [tensor.clone().requires_grad_() for tensor in (logits, values, weights)]
    loss(*leaves).backward()
    for name, ours, leaf in zip(("logits", "values", "weights"), grads, leaves):
        assert_close(ours, leaf.grad, name=f"grad {name}")
