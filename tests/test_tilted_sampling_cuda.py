"""Tilted sampling on CUDA tensors (the tilt + row kernels) against the CPU kernels on the same inputs."""

from __future__ import annotations

import math

import pytest
import torch

from moafast.ops import tilted_logits, tilted_sample, topk_with_logsumexp
from moafast.reference import tilted_sampling as reference
from moafast.testing import assert_close

pytestmark = pytest.mark.cuda

FILTERS = [{}, {"top_k": 7}, {"top_p": 0.8}, {"min_p": 0.05}, {"top_k": 40, "top_p": 0.9},
           {"top_k": 300, "top_p": 0.7, "min_p": 0.02}]


def problem(batch: int, vocab: int, dtype: torch.dtype):
    g = torch.Generator().manual_seed(batch * vocab)
    logits = (torch.randn(batch, vocab, generator=g) * 3).to(dtype)
    values = torch.randn(3, batch, vocab, generator=g).to(dtype)
    weights = torch.rand(batch, 3, generator=g)
    beta = torch.rand(batch, generator=g) + 0.5
    return logits, values, weights, beta


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(3, 7), (5, 5003), (2, 128256)])
def test_cuda_tilted_logits_match_cpu(filters, dtype, shape) -> None:
    logits, values, weights, beta = problem(*shape, dtype)
    kwargs = {"temperature": 0.7, **filters, "top_k": min(filters.get("top_k", 0), shape[1])}
    cpu = tilted_logits(logits, values, weights, beta, **kwargs)
    cuda = tilted_logits(logits.cuda(), values.cuda(), weights.cuda(), beta.cuda(), **kwargs).cpu()
    assert torch.equal(cpu > float("-inf"), cuda > float("-inf")), "kept sets differ"
    assert_close(cuda, cpu, dtype=torch.float32, name="tilted logits cuda vs cpu")


@pytest.mark.parametrize("filters", FILTERS)
def test_cuda_tokens_and_logprobs_match_cpu(filters) -> None:
    logits, values, weights, beta = problem(256, 5003, torch.float32)
    kwargs = {"temperature": 0.9, **filters, "seed": 77, "offset": 3, "return_logprobs": True}
    cpu = tilted_sample(logits, values, weights, beta, **kwargs)
    cuda = [t.cpu() for t in tilted_sample(logits.cuda(), values.cuda(), weights.cuda(), beta.cuda(), **kwargs)]
    same = cpu[0] == cuda[0]
    assert same.float().mean() >= 0.99, "the same Philox uniform must pick the same token but at CDF boundaries"
    assert_close(cuda[1][same], cpu[1][same], dtype=torch.float32, name="tilted log-probs")
    assert_close(cuda[2][same], cpu[2][same], dtype=torch.float32, name="base log-probs")


def test_cuda_candidate_mode_and_frequencies() -> None:
    vocab, rows, steps = 12, 4000, 5
    logits = torch.randn(1, vocab).expand(rows, vocab).contiguous().cuda()
    values = torch.randn(1, 1, vocab).expand(1, rows, vocab).contiguous().cuda()
    weights = torch.ones(rows, 1, device="cuda")
    counts = torch.zeros(vocab, device="cuda")
    for step in range(steps):
        tokens = tilted_sample(logits, values, weights, 1.5, top_p=0.9, seed=5, offset=step)
        counts += torch.bincount(tokens, minlength=vocab).float()
    probabilities = reference.tilted_logits(logits[:1].cpu(), values[:, :1].cpu(), weights[:1].cpu(), 1.5,
                                            top_p=0.9).softmax(-1)[0]
    kept = probabilities > 0
    expected = probabilities[kept] * rows * steps
    statistic = float(((counts.cpu().double()[kept] - expected) ** 2 / expected).sum())
    dof = int(kept.sum()) - 1
    critical = dof * (1 - 2 / (9 * dof) + 3.719 * math.sqrt(2 / (9 * dof))) ** 3 if dof else float("inf")
    assert counts.cpu()[~kept].sum() == 0 and statistic < critical
    big, cand_values, w, b = problem(4, 50000, torch.float32)
    _, candidates, lse = topk_with_logsumexp(big.cuda(), 40)
    q = torch.randn(3, 4, 40)
    ours = tilted_sample(big.cuda(), q.cuda(), w.cuda(), b.cuda(), candidates=candidates, seed=1,
                         return_logprobs=True, base_logsumexp=lse)
    cpu = tilted_sample(big, q, w, b, candidates=candidates.cpu(), seed=1, return_logprobs=True)
    assert torch.equal(ours[0].cpu(), cpu[0])


def test_cuda_bad_rows_raise() -> None:
    logits, values, weights, beta = problem(3, 100, torch.float32)
    logits[1, 5] = float("nan")
    with pytest.raises(ValueError, match="row 1: the tilted logits hold NaN"):
        tilted_sample(logits.cuda(), values.cuda(), weights.cuda(), beta.cuda(), seed=0)
