"""tilted_sample / tilted_logits / topk_with_logsumexp (CPU kernels) against the float64 references."""

from __future__ import annotations

import math

import pytest
import torch

from moafast.ops import tilted_logits, tilted_sample, topk_with_logsumexp
from moafast.reference import tilted_sampling as reference
from moafast.testing import assert_close

NEG_INF = float("-inf")
DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
FILTERS = [
    {},
    {"top_k": 7},
    {"top_p": 0.8},
    {"min_p": 0.05},
    {"top_k": 40, "top_p": 0.9},
    {"top_k": 300, "top_p": 0.7, "min_p": 0.02},
    {"top_k": 1},
]
# (B, V): a one-token vocabulary, odd sizes, and rows long enough for the threshold buffer and the mass bins.
SHAPES = [(1, 1), (3, 7), (5, 999), (4, 5003)]


def make_problem(batch: int, vocab: int, objectives: int, dtype: torch.dtype, *, scale: float = 3.0):
    logits = (torch.randn(batch, vocab, dtype=torch.float64) * scale).to(dtype)
    values = torch.randn(objectives, batch, vocab, dtype=torch.float64).to(dtype)
    weights = torch.rand(batch, objectives, dtype=torch.float64)
    beta = torch.rand(batch, dtype=torch.float64) + 0.5
    return logits, values, weights, beta


def keys(batch: int, seed: int, offset: int = 0) -> dict:
    return {"seeds": [seed] * batch, "offsets": [offset] * batch, "streams": list(range(batch))}


def usable(filters: dict, width: int) -> dict:
    return {**filters, "top_k": min(filters.get("top_k", 0), width)}


def reference_filter(t: torch.Tensor, **filters) -> torch.Tensor:
    """The reference filters applied to already tilted logits (a zero tilt, temperature 1)."""
    zero = torch.zeros(0, *t.shape, dtype=torch.float64)
    return reference.tilted_logits(t.double(), zero, torch.zeros(t.shape[0], 0, dtype=torch.float64), 0.0,
                                   **filters)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("before_tilt", [False, True])
def test_tilted_logits_float64_exact(cpu_isa: str, shape, filters, before_tilt) -> None:
    logits, values, weights, beta = make_problem(*shape, 3, torch.float64)
    kwargs = {"temperature": 0.7, "temperature_before_tilt": before_tilt, **usable(filters, shape[1])}
    ours = tilted_logits(logits, values, weights, beta, **kwargs)
    expected = reference.tilted_logits(logits, values, weights, beta, **kwargs)
    assert torch.equal(ours == NEG_INF, expected == NEG_INF), f"kept sets differ [{cpu_isa}]"
    assert_close(ours, expected, dtype=torch.float64, atol=1e-12, rtol=1e-12, name=f"tilted[{cpu_isa}]")


def top_p_rows(vocab: int, dtype: torch.dtype) -> torch.Tensor:
    """Rows for the two ways the kernel finds top-p's threshold: peaked rows (most of the mass within a few nats
    of the max, where the part maxima bound a cut and only the entries above it are binned), a flat row (the
    maxima never reach the target: every entry is binned), and a peaked row with entries exactly on every
    whole-nat cut below its max (they sit in the cut's own bin, outside the bins the cut fills)."""
    generator = torch.Generator().manual_seed(7)
    peaked = torch.randn(2, vocab, generator=generator, dtype=torch.float64) * 6.0
    flat = torch.randn(1, vocab, generator=generator, dtype=torch.float64) * 0.05
    on_cuts = torch.randn(1, vocab, generator=generator, dtype=torch.float64) * 4.0
    top = float(on_cuts.max())
    for nats in range(1, 17):
        on_cuts[0, nats * 97: nats * 97 + 40] = top - nats
    return torch.cat([peaked, flat, on_cuts]).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.999, 1.0 - 1e-7])
def test_top_p_alone_on_peaked_flat_and_tied_rows(cpu_isa: str, dtype, top_p) -> None:
    rows = top_p_rows(20011, dtype)
    no_values, no_weights = torch.zeros(0, *rows.shape, dtype=dtype), torch.zeros(rows.shape[0], 0, dtype=torch.float64)
    ours = tilted_logits(rows, no_values, no_weights, 0.0, top_p=top_p)
    kept = reference_filter(rows, top_p=top_p) > NEG_INF
    assert torch.equal(ours > NEG_INF, kept), f"kept sets differ [{cpu_isa}]"
    tokens = tilted_sample(rows, no_values, no_weights, 0.0, seed=3, top_p=top_p)
    ref_tokens, _, _ = reference.tilted_sample(rows.double(), no_values.double(), no_weights, 0.0,
                                               **keys(rows.shape[0], 3), top_p=top_p)
    assert torch.equal(tokens, ref_tokens), f"{tokens} != {ref_tokens} [{cpu_isa}]"


def top_k_rows(vocab: int, dtype: torch.dtype) -> torch.Tensor:
    """Rows for top-k's bound from the 64-entry parts' maxima: a random row, a row of small integers (the maxima
    and the k-th value tied many times over), a row of 30 finite entries in distinct parts among -inf (fewer
    finite maxima than k), and a row spanning +-1e37 (the bisection's midpoints near overflow)."""
    generator = torch.Generator().manual_seed(11)
    normal = torch.randn(vocab, generator=generator, dtype=torch.float64) * 3.0
    tied = torch.floor(torch.randn(vocab, generator=generator, dtype=torch.float64) * 2.0)
    sparse = torch.full((vocab,), NEG_INF, dtype=torch.float64)
    sparse[torch.randperm(vocab // 64, generator=generator)[:30] * 64 + 5] = torch.randn(30, generator=generator,
                                                                                      dtype=torch.float64)
    wide = torch.randn(vocab, generator=generator, dtype=torch.float64) * 1e37
    return torch.stack([normal, tied, sparse, wide]).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("top_k", [1, 5, 29, 30, 50, 77])
@pytest.mark.parametrize("top_p", [1.0, 0.8])
def test_top_k_on_tied_sparse_and_wide_rows(cpu_isa: str, dtype, top_k, top_p) -> None:
    rows = top_k_rows(20011, dtype)
    no_values, no_weights = torch.zeros(0, *rows.shape, dtype=dtype), torch.zeros(rows.shape[0], 0, dtype=torch.float64)
    ours = tilted_logits(rows, no_values, no_weights, 0.0, top_k=top_k, top_p=top_p)
    kept = reference_filter(rows, top_k=top_k, top_p=top_p) > NEG_INF
    assert torch.equal(ours > NEG_INF, kept), f"kept sets differ [{cpu_isa}]"
    tokens = tilted_sample(rows, no_values, no_weights, 0.0, seed=5, top_k=top_k, top_p=top_p)
    ref_tokens, _, _ = reference.tilted_sample(rows.double(), no_values.double(), no_weights, 0.0,
                                               **keys(rows.shape[0], 5), top_k=top_k, top_p=top_p)
    assert torch.equal(tokens, ref_tokens), f"{tokens} != {ref_tokens} [{cpu_isa}]"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("k", [1, 5, 29, 30, 50, 77])
def test_topk_with_logsumexp_on_tied_sparse_and_wide_rows(cpu_isa: str, dtype, k) -> None:
    rows = top_k_rows(20011, dtype)[[0, 1, 2]]  # the +-1e37 row's logsumexp overflows by design
    top_values, top_indices, lse = topk_with_logsumexp(rows, k)
    ref_values, ref_indices, ref_lse = reference.topk_with_logsumexp(rows, k)
    assert torch.equal(top_indices, ref_indices), f"[{cpu_isa}]"
    assert torch.equal(top_values, ref_values.to(dtype)), f"[{cpu_isa}]"
    assert_close(lse, ref_lse, dtype=dtype, name=f"lse[{cpu_isa}]")


@pytest.mark.parametrize("dtype", DTYPES[1:])
@pytest.mark.parametrize("filters", FILTERS)
def test_tilted_logits_low_precision(cpu_isa: str, dtype, filters) -> None:
    """Values within float32 accumulation of the float64 tilt; filters exact on the kernel's own values."""
    logits, values, weights, beta = make_problem(5, 2003, 4, dtype)
    kwargs = {"temperature": 1.3, **usable(filters, 2003)}
    unfiltered = tilted_logits(logits, values, weights, beta, temperature=1.3)
    assert unfiltered.dtype == torch.float32
    expected = reference.tilted_logits(logits, values, weights, beta, temperature=1.3)
    assert_close(unfiltered, expected, atol=1e-5, rtol=1e-5, name=f"tilted {dtype}[{cpu_isa}]")
    ours = tilted_logits(logits, values, weights, beta, **kwargs)
    kept = reference_filter(unfiltered, **usable(filters, 2003)) > NEG_INF
    assert torch.equal(ours > NEG_INF, kept), f"kept sets differ from the reference filters [{cpu_isa}]"
    assert torch.equal(ours[kept], unfiltered[kept])


@pytest.mark.parametrize("objectives", [0, 1, 4, 5, 9])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_many_objectives_and_zero_weights(cpu_isa: str, objectives, dtype) -> None:
    """The kernel adds the logits and up to four objectives per pass: counts around that, with zero weights
    between nonzero ones, against the reference (tilted values, and tokens and log-probs of the draw)."""
    batch, vocab = 3, 1501
    logits, values, weights, beta = make_problem(batch, vocab, objectives, dtype)
    weights[:, 1::3] = 0.0
    kwargs = {"temperature": 0.8, "top_k": 60}
    ours = tilted_logits(logits, values, weights, beta, **kwargs)
    expected = reference.tilted_logits(logits, values, weights, beta, **kwargs)
    assert torch.equal(ours == NEG_INF, expected == NEG_INF), f"kept sets differ [{cpu_isa}]"
    tolerance = {"atol": 1e-12, "rtol": 1e-12} if dtype == torch.float64 else {"atol": 1e-5, "rtol": 1e-5}
    assert_close(ours, expected, dtype=torch.float64, name=f"tilted, K={objectives} [{cpu_isa}]", **tolerance)
    for return_logprobs in (False, True):  # the base log-prob path tilts in separate passes
        drawn = tilted_sample(logits, values, weights, beta, seed=5, return_logprobs=return_logprobs, **kwargs)
        ref_tokens, _, ref_base = reference.tilted_sample(logits, values, weights, beta, **keys(batch, 5), **kwargs)
        tokens = drawn[0] if return_logprobs else drawn
        assert torch.equal(tokens, ref_tokens), f"K={objectives}, return_logprobs={return_logprobs} [{cpu_isa}]"
        if return_logprobs:
            assert_close(drawn[2], ref_base, dtype=torch.float64, atol=1e-5, rtol=1e-5, name="base log-probs")


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_candidate_mode_matches_reference(filters, dtype) -> None:
    batch, vocab, width = 4, 3001, 40
    logits, _, weights, beta = make_problem(batch, vocab, 3, dtype)
    candidates = torch.stack([torch.randperm(vocab)[:width] for _ in range(batch)])
    values = torch.randn(3, batch, width, dtype=torch.float32)  # value models' own dtype
    kwargs = {"temperature": 0.9, "temperature_before_tilt": True, "candidates": candidates,
              **usable(filters, width)}
    ours = tilted_logits(logits, values, weights, beta, **kwargs)
    expected = reference.tilted_logits(logits, values, weights, beta, **kwargs)
    assert ours.shape == (batch, width)
    assert torch.equal(ours == NEG_INF, expected == NEG_INF)
    assert_close(ours, expected, dtype=dtype, name="candidate tilted")
    tokens, tilted_lp, base_lp = tilted_sample(logits, values, weights, beta, seed=11, offset=3,
                                               return_logprobs=True, **kwargs)
    ref_tokens, ref_tilted, ref_base = reference.tilted_sample(logits, values, weights, beta, **keys(batch, 11, 3),
                                                               **kwargs)
    assert torch.equal(tokens, ref_tokens)
    assert bool(torch.isin(tokens, candidates).all())
    assert_close(tilted_lp, ref_tilted, dtype=dtype, name="tilted log-probs")
    assert_close(base_lp, ref_base, dtype=dtype, name="base log-probs")
    _, _, lse = topk_with_logsumexp(logits, 5, temperature=0.9)
    _, _, base_given = tilted_sample(logits, values, weights, beta, seed=11, offset=3, return_logprobs=True,
                                     base_logsumexp=lse, **kwargs)
    assert_close(base_given, ref_base, dtype=dtype, name="base log-probs from the stage-1 logsumexp")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_sample_and_logprobs_match_reference(cpu_isa: str, shape, filters, dtype) -> None:
    batch, vocab = shape
    logits, values, weights, beta = make_problem(batch, vocab, 2, dtype)
    kwargs = {"temperature": 0.8, **usable(filters, vocab)}
    tokens, tilted_lp, base_lp = tilted_sample(logits, values, weights, beta, seed=1234, offset=5,
                                               return_logprobs=True, **kwargs)
    ref_tokens, ref_tilted, ref_base = reference.tilted_sample(logits, values, weights, beta,
                                                               **keys(batch, 1234, 5), **kwargs)
    assert torch.equal(tokens, ref_tokens), f"{tokens} != {ref_tokens} [{cpu_isa}]"
    accumulation = torch.float64 if dtype == torch.float64 else torch.float32
    assert tilted_lp.dtype == base_lp.dtype == accumulation
    assert_close(tilted_lp, ref_tilted, dtype=accumulation, name=f"tilted log-probs[{cpu_isa}]")
    assert_close(base_lp, ref_base, dtype=accumulation, name=f"base log-probs[{cpu_isa}]")


def chi_square_critical(dof: int, z: float = 3.719) -> float:
    """Wilson-Hilferty upper quantile of chi-square (z = 3.719: one-sided p = 1e-4)."""
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


@pytest.mark.parametrize("filters", [{}, {"top_k": 5}, {"top_p": 0.75}, {"min_p": 0.1}, {"top_k": 8, "top_p": 0.9}])
def test_sampled_frequencies_follow_the_distribution(filters) -> None:
    """20,000 draws (2,000 identical rows x 10 steps) against the reference probabilities."""
    vocab, rows, steps = 12, 2000, 10
    logits = torch.randn(1, vocab, dtype=torch.float64).expand(rows, vocab).contiguous()
    values = torch.randn(2, 1, vocab, dtype=torch.float64).expand(2, rows, vocab).contiguous()
    weights = torch.tensor([[0.3, 0.7]], dtype=torch.float64).expand(rows, 2).contiguous()
    kwargs = {"temperature": 0.9, **filters}
    counts = torch.zeros(vocab)
    for step in range(steps):
        tokens = tilted_sample(logits, values, weights, 1.5, seed=99, offset=step, **kwargs)
        counts += torch.bincount(tokens, minlength=vocab).double()
    probabilities = reference.tilted_logits(logits[:1], values[:, :1], weights[:1], 1.5, **kwargs).softmax(-1)[0]
    kept = probabilities > 0
    assert counts[~kept].sum() == 0, "a filtered token was drawn"
    expected = probabilities[kept] * rows * steps
    statistic = float(((counts[kept] - expected) ** 2 / expected).sum())
    dof = int(kept.sum()) - 1
    if dof == 0:
        return
    assert statistic < chi_square_critical(dof), f"chi-square {statistic:.1f} with {dof} dof"


def test_same_seed_same_tokens_and_steps_differ() -> None:
    logits, values, weights, beta = make_problem(64, 500, 2, torch.float32)
    first = tilted_sample(logits, values, weights, beta, seed=7, offset=0)
    assert torch.equal(first, tilted_sample(logits, values, weights, beta, seed=7, offset=0))
    assert not torch.equal(first, tilted_sample(logits, values, weights, beta, seed=7, offset=1))
    assert not torch.equal(first, tilted_sample(logits, values, weights, beta, seed=8, offset=0))


def test_per_request_seeds_ignore_batch_composition_and_threads() -> None:
    logits, values, weights, beta = make_problem(16, 4001, 3, torch.float32)
    seeds = torch.randint(0, 2**62, (16,))
    offsets = torch.randint(0, 100, (16,))
    kwargs = {"temperature": 0.7, "top_k": 50, "top_p": 0.9}
    torch.set_num_threads(2)
    full = tilted_sample(logits, values, weights, beta, seed=seeds, offset=offsets, **kwargs)
    order = torch.randperm(16)
    permuted = tilted_sample(logits[order], values[:, order], weights[order], beta[order], seed=seeds[order],
                             offset=offsets[order], **kwargs)
    assert torch.equal(permuted, full[order])
    subset = torch.tensor([3, 11])
    alone = tilted_sample(logits[subset], values[:, subset], weights[subset], beta[subset], seed=seeds[subset],
                          offset=offsets[subset], **kwargs)
    assert torch.equal(alone, full[subset])
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = tilted_sample(logits, values, weights, beta, seed=seeds, offset=offsets, **kwargs)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(single, full)


def test_generator_and_global_seed_reproduce() -> None:
    logits, values, weights, beta = make_problem(32, 300, 1, torch.float32)
    first = tilted_sample(logits, values, weights, beta, generator=torch.Generator().manual_seed(5))
    again = tilted_sample(logits, values, weights, beta, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first, again)
    torch.manual_seed(3)
    a = tilted_sample(logits, values, weights, beta)
    torch.manual_seed(3)
    assert torch.equal(a, tilted_sample(logits, values, weights, beta))


def test_non_contiguous_inputs() -> None:
    logits, values, weights, beta = make_problem(6, 801, 3, torch.float32)
    wide = torch.randn(6, 2 * 801)
    wide[:, ::2] = logits
    strided_logits = wide[:, ::2]
    batch_major = values.permute(1, 0, 2).contiguous().permute(1, 0, 2)  # [K, B, V] view of a [B, K, V] tensor
    assert not batch_major.is_contiguous() and not strided_logits.is_contiguous()
    kwargs = {"temperature": 0.9, "top_k": 20, "seed": 4}
    expected = tilted_sample(logits, values, weights, beta, return_logprobs=True, **kwargs)
    ours = tilted_sample(strided_logits, batch_major, weights.t().contiguous().t(), beta, return_logprobs=True,
                         **kwargs)
    for a, b in zip(ours, expected):
        assert torch.equal(a, b)


def test_masked_tokens_are_never_drawn() -> None:
    logits, values, weights, beta = make_problem(50, 100, 2, torch.float32)
    logits[:, ::2] = NEG_INF
    tokens = tilted_sample(logits, values, weights, beta, seed=0)
    assert bool((tokens % 2 == 1).all())


def test_zero_weight_objectives_are_not_read() -> None:
    logits, values, weights, beta = make_problem(3, 50, 2, torch.float32)
    weights[:, 1] = 0
    values[1] = float("nan")
    expected = tilted_logits(logits, values[:1], weights[:, :1], beta)
    assert torch.equal(tilted_logits(logits, values, weights, beta), expected)


@pytest.mark.parametrize("filters", [{}, {"top_k": 5}, {"top_p": 0.8, "min_p": 0.01}])
@pytest.mark.parametrize("candidate_mode", [False, True])
def test_tilted_logits_gradients_match_reference(filters, candidate_mode) -> None:
    batch, vocab = 3, 60
    logits, values, weights, beta = make_problem(batch, vocab, 2, torch.float64)
    candidates = torch.stack([torch.randperm(vocab)[:20] for _ in range(batch)]) if candidate_mode else None
    if candidate_mode:
        values = values[:, :, :20].contiguous()
    kwargs = {"temperature": 0.8, "candidates": candidates, **filters}
    upstream = torch.randn(batch, 20 if candidate_mode else vocab, dtype=torch.float64)

    def gradients(function):
        inputs = [t.clone().requires_grad_() for t in (logits, values, weights, beta)]
        out = function(*inputs, **kwargs)
        torch.where(out > NEG_INF, out * upstream, torch.zeros_like(out)).sum().backward()
        return [t.grad for t in inputs]

    for ours, theirs, name in zip(gradients(tilted_logits), gradients(reference.tilted_logits),
                                  ("logits", "values", "weights", "beta")):
        assert_close(ours, theirs, dtype=torch.float64, name=f"grad {name}")


def test_direct_calls_match_the_op_and_meta_tensors_reach_the_fake_kernels() -> None:
    """Eager calls on plain tensors skip the dispatcher: the op itself gives the same outputs; meta tensors (and
    calls autograd records) still go through it."""
    logits, values, weights, beta = make_problem(4, 300, 2, torch.float32)
    coefficients = (weights * beta[:, None]).double() / 0.8
    seeds, offsets, streams = torch.full((4,), 7), torch.full((4,), 2), torch.arange(4)
    direct = tilted_sample(logits, values, weights, beta, temperature=0.8, top_k=20, seed=7, offset=2,
                           return_logprobs=True)
    through_op = torch.ops.moafast.tilted_sample(logits, values, coefficients, None, seeds, offsets, streams,
                                                 1 / 0.8, 20, 1.0, 0.0, True, None)
    for ours, theirs in zip(direct, through_op):
        assert torch.equal(ours, theirs)
    for ours, theirs in zip(topk_with_logsumexp(logits, 9), torch.ops.moafast.topk_with_logsumexp(logits, 9, 1.0)):
        assert torch.equal(ours, theirs)
    meta = [t.to("meta") for t in (logits, values, weights)]
    tokens = tilted_sample(*meta, 1.0, seed=0)
    assert tokens.device.type == "meta" and tokens.shape == (4,) and tokens.dtype == torch.int64
    top_values, top_indices, lse = topk_with_logsumexp(meta[0], 5)
    assert top_values.device.type == "meta" and top_indices.shape == (4, 5) and lse.shape == (4,)


def test_sample_logprobs_are_not_differentiable() -> None:
    logits, values, weights, beta = make_problem(2, 10, 1, torch.float64)
    logits.requires_grad_()
    _, tilted_lp, _ = tilted_sample(logits, values, weights, beta, seed=0, return_logprobs=True)
    with pytest.raises(RuntimeError, match="not differentiable"):
        tilted_lp.sum().backward()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k", [((1, 1), 1), ((3, 17), 17), ((5, 999), 40), ((2, 70001), 64), ((4, 5000), 1)])
def test_topk_with_logsumexp_matches_reference(cpu_isa: str, dtype, shape, k) -> None:
    logits = (torch.randn(*shape, dtype=torch.float64) * 4).to(dtype)
    top_values, top_indices, lse = topk_with_logsumexp(logits, k, temperature=0.6)
    ref_values, ref_indices, ref_lse = reference.topk_with_logsumexp(logits, k, temperature=0.6)
    accumulation = torch.float64 if dtype == torch.float64 else torch.float32
    assert torch.equal(top_indices, ref_indices), f"[{cpu_isa}]"
    assert_close(top_values, ref_values, dtype=accumulation, name=f"top values[{cpu_isa}]")
    assert_close(lse, ref_lse, dtype=accumulation, name=f"lse[{cpu_isa}]")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_topk_with_logsumexp_ranks_nan_first_like_torch_sort(cpu_isa: str, dtype) -> None:
    """NaN never wins a 64-entry part's max, so rows that hold NaN rank every entry: NaN above +inf above the
    rest (torch.sort's order), the logsumexp NaN. Rows: three finite entries among NaN, NaN in every other
    entry, NaN and -inf only, all NaN, and +inf with NaN."""
    rows = torch.randn(5, 2000, dtype=torch.float64)
    rows[0] = float("nan")
    rows[0, [3, 700, 1999]] = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)
    rows[1, ::2] = float("nan")
    rows[2] = NEG_INF
    rows[2, [5, 900]] = float("nan")
    rows[3] = float("nan")
    rows[4, [10, 1500]] = float("inf")
    rows[4, 77] = float("nan")
    rows = rows.to(dtype)
    for k in (1, 5, 50):
        top_values, top_indices, lse = topk_with_logsumexp(rows, k)
        ref_values, ref_indices, _ = reference.topk_with_logsumexp(rows, k)
        assert torch.equal(top_indices, ref_indices), f"k={k} [{cpu_isa}]"
        assert torch.equal(top_values.double().isnan(), ref_values.isnan())
        assert bool(lse.isnan().all()), f"{lse} [{cpu_isa}]"


def test_topk_ties_go_to_the_lower_token_id() -> None:
    logits = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0, 0.0] * 300])
    _, indices, _ = topk_with_logsumexp(logits, 5)
    assert indices.tolist() == [[1, 2, 4, 7, 8]]


def test_opcheck_and_compile() -> None:
    logits, values, weights, beta = make_problem(3, 64, 2, torch.float32)
    coefficients = (weights * beta[:, None]).double()
    seeds = torch.tensor([1, 2, 3])
    offsets = torch.zeros(3, dtype=torch.int64)
    candidates = torch.stack([torch.randperm(64)[:9] for _ in range(3)])
    torch.library.opcheck(torch.ops.moafast.tilted_sample,
                          (logits, values, coefficients, None, seeds, offsets, seeds, 1.0, 5, 0.9, 0.0, True, None))
    torch.library.opcheck(torch.ops.moafast.tilted_sample,
                          (logits, values[:, :, :9].contiguous(), coefficients, candidates, seeds, offsets, seeds,
                           1.0, 0, 1.0, 0.1, True, torch.randn(3)))
    torch.library.opcheck(torch.ops.moafast.tilted_logits,
                          (logits.double().requires_grad_(), values.double().requires_grad_(),
                           coefficients.requires_grad_(), None, 0.5, 10, 0.95, 0.0))
    torch.library.opcheck(torch.ops.moafast.topk_with_logsumexp, (logits, 7, 1.0))

    def step(logits, values, weights):
        tokens, tilted_lp, _ = tilted_sample(logits, values, weights, 1.0, top_k=5, seed=3, offset=2,
                                             return_logprobs=True)
        processed = tilted_logits(logits, values, weights, 1.0, top_k=5)
        return tokens, tilted_lp, processed.log_softmax(-1)

    compiled = torch.compile(step, fullgraph=True)
    for a, b in zip(compiled(logits, values, weights), step(logits, values, weights)):
        assert torch.equal(a, b)


def test_bad_input_raises_clear_errors() -> None:
    logits, values, weights, beta = make_problem(3, 20, 2, torch.float32)
    cases = [
        (ValueError, r"values: expected shape \[K, B, V\]", dict(values=values[:, :2])),
        (TypeError, "values: expected the dtype of logits", dict(values=values.double())),
        (ValueError, r"weights: expected shape \[B, K\]", dict(weights=weights[:2])),
        (ValueError, "weights/beta: expected finite", dict(weights=torch.full_like(weights, float("nan")))),
        (ValueError, "weights/beta: expected finite", dict(beta=torch.tensor([1.0, float("nan"), 1.0]))),
        (ValueError, r"beta: expected shape \[B\]", dict(beta=torch.ones(4))),
        (ValueError, "beta: expected a finite", dict(beta=float("inf"))),
        (ValueError, r"top_k: expected 0 \(off\) or 1 <= top_k <= 20", dict(top_k=21)),
        (ValueError, r"top_p: expected a value in \(0, 1\]", dict(top_p=0.0)),
        (ValueError, r"top_p: expected a value in \(0, 1\]", dict(top_p=1.5)),
        (ValueError, r"min_p: expected a value in \[0, 1\)", dict(min_p=1.0)),
        (ValueError, "temperature: expected a finite value > 0", dict(temperature=0.0)),
        (ValueError, "seed and generator", dict(seed=1, generator=torch.Generator())),
        (ValueError, r"seed: expected shape \[B\]", dict(seed=torch.tensor([1, 2]))),
        (TypeError, "logits: expected dtype", dict(logits=logits.int())),
        (ValueError, "logits: expected a 2-D tensor", dict(logits=logits[0])),
    ]
    for error, message, change in cases:
        arguments = {"logits": logits, "values": values, "weights": weights, "beta": beta, "seed": 0, **change}
        if "generator" in change:
            arguments["seed"] = change["seed"]
        with pytest.raises(error, match=message):
            tilted_sample(arguments.pop("logits"), arguments.pop("values"), arguments.pop("weights"),
                          arguments.pop("beta"), **arguments)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_at_any_lane_of_a_part_raises(cpu_isa: str, bad: float) -> None:
    """The per-part maxima count NaN and +inf in vector lanes: every lane position of a part must report them."""
    logits, values, weights, beta = make_problem(2, 300, 2, torch.float32)
    for position in (0, 9, 15, 16, 27, 63, 64, 130, 299):
        poisoned = logits.clone()
        poisoned[1, position] = bad
        with pytest.raises(ValueError, match=r"row 1: the tilted logits hold NaN or \+inf"):
            tilted_sample(poisoned, values, weights, beta, seed=0)


def test_bad_rows_and_candidates_raise() -> None:
    logits, values, weights, beta = make_problem(3, 20, 2, torch.float32)
    poisoned = logits.clone()
    poisoned[1, 4] = float("nan")
    with pytest.raises(ValueError, match=r"row 1: the tilted logits hold NaN or \+inf"):
        tilted_sample(poisoned, values, weights, beta, seed=0)
    masked = logits.clone()
    masked[2] = NEG_INF
    with pytest.raises(ValueError, match="row 2: every token has logit -inf"):
        tilted_sample(masked, values, weights, beta, seed=0)
    too_many = torch.arange(21).expand(3, 21)
    with pytest.raises(ValueError, match=r"candidates: expected 1 <= k <= V = 20"):
        tilted_sample(logits, torch.zeros(2, 3, 21), weights, beta, candidates=too_many, seed=0)
    outside = torch.tensor([[0, 5], [1, 20], [2, 3]])
    with pytest.raises(ValueError, match=r"candidates: expected token ids in \[0, V\)"):
        tilted_sample(logits, torch.zeros(2, 3, 2), weights, beta, candidates=outside, seed=0)
    repeated = torch.tensor([[0, 5], [1, 1], [2, 3]])
    with pytest.raises(ValueError, match=r"candidates\[1\]: expected distinct token ids"):
        tilted_sample(logits, torch.zeros(2, 3, 2), weights, beta, candidates=repeated, seed=0)
    with pytest.raises(ValueError, match=r"k: expected 1 <= k <= V = 20"):
        topk_with_logsumexp(logits, 21)
