"""Hypervolume ops against inclusion-exclusion (moafast.reference), moocore and pygmo; gradients against
one-sided finite differences; the policy for ties, duplicates, dominated and boundary points; bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from moafast import reference
from moafast.ops import hypervolume, hypervolume_contributions, hypervolume_with_contributions
from moafast.testing import assert_close


def sphere_front(n: int, d: int, seed: int) -> torch.Tensor:
    """n points on the positive orthant of the unit sphere: all mutually nondominated."""
    x = torch.rand(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 1e-3
    return x / x.norm(dim=1, keepdim=True)


def uniform_cloud(n: int, d: int, seed: int, decimals: int | None = None) -> torch.Tensor:
    x = torch.rand(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x if decimals is None else torch.round(x, decimals=decimals)


@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("maximize", [False, True])
def test_batched_sets_match_inclusion_exclusion(d: int, maximize: bool, cpu_isa: str) -> None:
    points = uniform_cloud(3 * 4 * 9, d, seed=d).view(3, 4, 9, d)
    points[0, 0, 3] = points[0, 0, 1]  # a duplicate
    points[1, 2, :, 0] = torch.round(points[1, 2, :, 0], decimals=1)  # ties in one objective
    ref = torch.full((d,), 0.0 if maximize else 1.0, dtype=torch.float64)
    ref_per_set = ref + 0.05 * torch.rand(3, 4, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64) \
        * (-1 if maximize else 1)
    mask = torch.rand(3, 4, 9, generator=torch.Generator().manual_seed(2)) > 0.2
    mask[2, 3] = False  # a fully masked set
    for r in (ref, ref_per_set):  # 9 points, some masked: both the small-set and the general paths
        assert_close(hypervolume(points, r, maximize=maximize, mask=mask),
                     reference.hypervolume(points, r, maximize=maximize, mask=mask), name=f"hv d={d}")
        assert_close(hypervolume_contributions(points, r, maximize=maximize, mask=mask),
                     reference.hypervolume_contributions(points, r, maximize=maximize, mask=mask),
                     name=f"contributions d={d}")
    assert hypervolume(points, ref, maximize=maximize, mask=mask)[2, 3] == 0


@pytest.mark.parametrize("d", [4, 5, 6])
def test_sweeps_on_grid_sets_match_inclusion_exclusion(d: int) -> None:
    """300 sets of 10 points on a 10-level grid: ties in every objective, duplicates, dominated points and rows
    tied at the lowest level of the 4-D sweep (its bulk 3-D base, its stop where a row covers the point)."""
    points = torch.randint(0, 10, (300, 10, d), generator=torch.Generator().manual_seed(d)).double() / 10
    ref = torch.ones(d, dtype=torch.float64)
    assert_close(hypervolume(points, ref), reference.hypervolume(points, ref), atol=1e-12, rtol=0, name=f"hv d={d}")
    assert_close(hypervolume_contributions(points, ref), reference.hypervolume_contributions(points, ref),
                 atol=1e-12, rtol=0, name=f"contributions d={d}")


SMALL_AND_LARGE = [7, 12]  # inclusion-exclusion inside the kernel up to 8 points, the sweeps and WFG above


@pytest.mark.parametrize("n", SMALL_AND_LARGE)
@pytest.mark.parametrize("d", [2, 3, 4, 5, 6])
def test_gradient_matches_autograd_of_the_reference_away_from_ties(d: int, n: int) -> None:
    points = sphere_front(n, d, seed=d).expand(2, n, d).clone()
    points[1] = uniform_cloud(n, d, seed=10 + d) * 0.9  # dominated points too
    ref = torch.full((d,), 1.1, dtype=torch.float64)
    ours_p, ours_r = points.clone().requires_grad_(), ref.clone().requires_grad_()
    (hypervolume(ours_p, ours_r) * torch.tensor([1.0, -2.0], dtype=torch.float64)).sum().backward()
    ref_p, ref_r = points.clone().requires_grad_(), ref.clone().requires_grad_()
    (reference.hypervolume(ref_p, ref_r) * torch.tensor([1.0, -2.0], dtype=torch.float64)).sum().backward()
    assert_close(ours_p.grad, ref_p.grad, name="d points")
    assert_close(ours_r.grad, ref_r.grad, name="d ref")


def _one_sided(points: torch.Tensor, ref: torch.Tensor, maximize: bool, step: float = 1e-7):
    """Finite differences in the improving direction, the gradient's definition."""
    direction = 1.0 if maximize else -1.0
    base = hypervolume(points, ref, maximize=maximize)
    grad = torch.zeros_like(points)
    for index in np.ndindex(*points.shape):
        moved = points.clone()
        moved[index] += direction * step
        grad[index] = (hypervolume(moved, ref, maximize=maximize) - base) / (direction * step)
    grad_ref = torch.zeros_like(ref)
    for k in range(ref.shape[0]):
        moved = ref.clone()
        moved[k] -= direction * step  # away from the points: the direction in which HV grows
        grad_ref[k] = (hypervolume(points, moved, maximize=maximize) - base) / (-direction * step)
    return grad, grad_ref


@pytest.mark.parametrize("n", [8, 13, 20])  # the small-set path up to 16 points, the sweeps above
@pytest.mark.parametrize("d", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("maximize", [False, True])
def test_gradient_is_the_improving_one_sided_derivative_at_kinks(d: int, maximize: bool, n: int,
                                                                 cpu_isa: str) -> None:
    """Ties, duplicates, weakly and strictly dominated points, points on the reference boundary."""
    points = torch.round(uniform_cloud(n, d, seed=20 + d) * 4, decimals=0) / 4  # heavy ties on a grid
    points[5] = points[2]  # duplicate
    ref = torch.full((d,), 1.0, dtype=torch.float64)
    points[6, 0] = 1.0  # on the reference boundary, along the first and the last objective
    points[7, d - 1] = 1.0
    if maximize:
        points, ref = 1.0 - points, ref * 0.0
    expected_points, expected_ref = _one_sided(points, ref, maximize)
    p, r = points.clone().requires_grad_(), ref.clone().requires_grad_()
    hypervolume(p, r, maximize=maximize).backward()
    assert_close(p.grad, expected_points, atol=1e-6, rtol=1e-6, name="d points")
    assert_close(r.grad, expected_ref, atol=1e-6, rtol=1e-6, name="d ref")


@pytest.mark.parametrize("d", [2, 3, 4, 5, 6])
def test_small_set_path_equals_the_general_path(d: int) -> None:
    """16 points take the small-set path; a 17th inside every box (dominated by all, never on a face)
    changes no output and sends the set through the sweeps instead."""
    points = torch.round(uniform_cloud(16, d, seed=30 + d) * 8, decimals=0) / 8 * 0.99
    points[9] = points[4]
    ref = torch.ones(d, dtype=torch.float64)
    grown = torch.cat([points, torch.full((1, d), 1.0 - 1e-9, dtype=torch.float64)])
    outputs = []
    for p in (points, grown):
        leaf, r = p.clone().requires_grad_(), ref.clone().requires_grad_()
        value = hypervolume(leaf, r)
        value.backward()
        ref_alone = ref.clone().requires_grad_()  # the value and d ref only
        hypervolume(p, ref_alone).backward()
        outputs.append((value, hypervolume_contributions(p, ref)[:16], leaf.grad[:16], r.grad, ref_alone.grad))
    for name, small, general in zip(("hv", "contributions", "d points", "d ref", "d ref alone"), *outputs):
        assert_close(small, general, atol=1e-12, rtol=1e-12, name=name)


@pytest.mark.parametrize("d", [2, 3, 5])
@pytest.mark.parametrize("n", [8, 16, 30])
def test_one_pass_outputs_equal_the_separate_ops(d: int, n: int, cpu_isa: str) -> None:
    """hypervolume_with_contributions (value, contributions and the gradient from one kernel pass) against the
    separate ops, and the gradient computed in the forward pass against the one computed in the backward."""
    points = torch.round(uniform_cloud(4 * n, d, seed=40 + d) * 6, decimals=0).view(4, n, d) / 6 * 0.999
    points[1, 3] = points[1, 0]
    mask = torch.rand(4, n, generator=torch.Generator().manual_seed(3)) > 0.15
    ref = torch.ones(d, dtype=torch.float64)
    leaf, r = points.clone().requires_grad_(), ref.clone().requires_grad_()
    value, contributions = hypervolume_with_contributions(leaf, r, mask=mask)
    (value * torch.arange(1.0, 5.0, dtype=torch.float64)).sum().backward()
    assert_close(value, hypervolume(points, ref, mask=mask), atol=1e-13, rtol=1e-13, name="hv")
    assert_close(contributions, hypervolume_contributions(points, ref, mask=mask), atol=1e-13, rtol=1e-13,
                 name="contributions")
    late_p, late_r = points.clone().requires_grad_(), ref.clone().requires_grad_()
    flags = (True, False, False, False)  # no faces in the forward pass: the backward computes them
    late = torch.ops.moafast.hypervolume_outputs(late_p, late_r, mask, False, *flags)[0]
    (late * torch.arange(1.0, 5.0, dtype=torch.float64)).sum().backward()
    assert_close(leaf.grad, late_p.grad, atol=1e-13, rtol=1e-13, name="d points")
    assert_close(r.grad, late_r.grad, atol=1e-13, rtol=1e-13, name="d ref")


def test_simple_staircase_values() -> None:
    points = torch.tensor([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [3.0, 3.0], [5.0, 0.0]], dtype=torch.float64,
                          requires_grad=True)
    ref = torch.tensor([4.0, 4.0], dtype=torch.float64)
    value = hypervolume(points, ref)
    assert value.item() == 6.0, "3 + 2 + 1; (3, 3) is dominated, (5, 0) lies beyond the reference"
    assert hypervolume_contributions(points.detach(), ref).tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
    value.backward()
    assert points.grad.tolist() == [[-1.0, -1.0], [-1.0, -1.0], [-1.0, -1.0], [0.0, 0.0], [0.0, 0.0]]


def test_empty_and_degenerate_sets() -> None:
    empty = torch.zeros(0, 3, dtype=torch.float64, requires_grad=True)
    ref = torch.ones(3, dtype=torch.float64)
    assert hypervolume(empty, ref).item() == 0.0
    outside = torch.full((4, 3), 2.0, dtype=torch.float64, requires_grad=True)
    value = hypervolume(outside, ref)
    value.backward()
    assert value.item() == 0.0 and bool((outside.grad == 0).all())
    assert hypervolume(torch.zeros(0, 5, 3, dtype=torch.float64), ref).shape == (0,)
    assert hypervolume(torch.tensor([[0.25], [0.5]], dtype=torch.float64), torch.ones(1, dtype=torch.float64)) == 0.75


def test_float32_is_computed_in_float64_and_rounded_once() -> None:
    points = sphere_front(50, 3, seed=3).float()
    ref = torch.full((3,), 1.1, dtype=torch.float32)
    single = hypervolume(points, ref)
    assert single.dtype == torch.float32
    assert_close(single, hypervolume(points.double(), ref.double()).float(), atol=0, rtol=0, name="float32 hv")


@pytest.mark.parametrize("sets,n,d", [(200, 12, 3), (200, 8, 5), (24, 40, 5)])  # small sets: sweep, slabs; 5-D sweep
def test_results_do_not_depend_on_the_thread_count(sets: int, n: int, d: int) -> None:
    points = uniform_cloud(sets * n, d, seed=4).view(sets, n, d)
    ref = torch.ones(d, dtype=torch.float64)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = hypervolume(points, ref), hypervolume_contributions(points, ref)
        torch.set_num_threads(2)
        two = hypervolume(points, ref), hypervolume_contributions(points, ref)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_calls_without_autograd_skip_the_dispatcher_with_the_same_results(dtype: torch.dtype) -> None:
    """Without autograd the public functions run the op's kernel directly; under a dispatch mode (tracing, fake
    tensors) they go through the op. Both give the op's outputs: non-contiguous points, a strided mask, float32."""
    points = uniform_cloud(3 * 20, 4, seed=9).to(dtype).view(3, 20, 4)[..., 1:]
    mask = (torch.rand(3, 40, generator=torch.Generator().manual_seed(9)) > 0.2)[:, ::2]
    ref = torch.ones(3, 3, dtype=dtype)
    assert not points.is_contiguous() and not mask.is_contiguous()
    expected = torch.ops.moafast.hypervolume_outputs(points, ref, mask, True, True, True, False, False)[:2]

    class Recorder(torch.utils._python_dispatch.TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    direct = hypervolume_with_contributions(points, ref, maximize=True, mask=mask)
    with Recorder() as recorder:
        traced = hypervolume_with_contributions(points, ref, maximize=True, mask=mask)
    assert "moafast.hypervolume_outputs.default" in recorder.ops, recorder.ops
    for got in (direct, traced):
        assert got[0].dtype == dtype and got[1].dtype == dtype
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_vmap_and_jit_trace_go_through_the_op() -> None:
    """torch.func.vmap and torch.jit.trace must not take the dispatcher-free path: vmap runs the op through its
    batching rule (with the faces, as under every transform: the value may then differ in the last bit), and a
    trace would otherwise record an uninitialised output instead of the kernel."""
    points = uniform_cloud(4 * 7, 3, seed=12).view(4, 7, 3)
    ref = torch.ones(3, dtype=torch.float64)
    assert_close(torch.func.vmap(lambda p: hypervolume(p, ref))(points), hypervolume(points, ref), name="vmap")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on the op's Python-side checks
        traced = torch.jit.trace(lambda p: hypervolume(p, ref), (points,), check_trace=False)
    other = points * 0.5
    assert_close(traced(other), hypervolume(other, ref), atol=0, rtol=0, name="jit.trace on new inputs")


def test_meta_tensors_reach_the_fake_kernel() -> None:
    """Plain meta tensors are not run directly (there is no data): the op's fake kernel gives the shapes."""
    points = torch.empty(6, 5, 3, dtype=torch.float64, device="meta")
    ref = torch.empty(3, dtype=torch.float64, device="meta")
    value, contributions = hypervolume_with_contributions(points, ref)
    assert value.device.type == "meta" and value.shape == (6,) and contributions.shape == (6, 5)
    assert hypervolume_contributions(points, ref).shape == (6, 5)


def test_opcheck_and_compile() -> None:
    points = uniform_cloud(2 * 6, 3, seed=5).view(2, 6, 3).requires_grad_()
    ref = torch.ones(3, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(2, 6, dtype=torch.bool)
    for flags in ((True, False, False, False), (False, True, False, False), (True, True, True, True),
                  (True, False, True, False)):
        torch.library.opcheck(torch.ops.moafast.hypervolume_outputs.default, (points, ref, mask, False, *flags))
    compiled = torch.compile(lambda p, r: hypervolume(p, r, mask=mask).sum(), fullgraph=True)
    value = compiled(points, ref)
    value.backward()
    assert_close(value, hypervolume(points.detach(), ref.detach()).sum(), name="compiled")
    assert points.grad is not None and ref.grad is not None


def test_bad_input_names_the_argument() -> None:
    points = uniform_cloud(5, 3, seed=6)
    ref = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"ref: expected shape \[d\]"):
        hypervolume(points, torch.ones(2, dtype=torch.float64))
    with pytest.raises(TypeError, match="ref: expected the dtype of points"):
        hypervolume(points, ref.float())
    with pytest.raises(TypeError, match="points: expected dtype"):
        hypervolume(points.to(torch.int64), ref.to(torch.int64))
    with pytest.raises(ValueError, match=r"points: expected \[..., n, d\]"):
        hypervolume(points[0], ref)
    with pytest.raises(ValueError, match="d >= 1"):
        hypervolume(torch.zeros(4, 0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64))
    with pytest.raises(ValueError, match="mask"):
        hypervolume(points, ref, mask=torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="one device, got points on cpu, ref on meta"):
        hypervolume(points, ref.to("meta"))
    with pytest.raises(ValueError, match="one device, got points on cpu, ref on cpu, mask on meta"):
        hypervolume(points, ref, mask=torch.ones(5, dtype=torch.bool, device="meta"))
    bad = points.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"points\[3\]: expected finite"):
        hypervolume(bad, ref)
    mask = torch.ones(5, dtype=torch.bool)
    mask[3] = False
    assert torch.isfinite(hypervolume(bad, ref, mask=mask)), "a masked-out point may hold anything"
    with pytest.raises(ValueError, match="ref: expected finite"):
        hypervolume(points, torch.tensor([1.0, float("inf"), 1.0], dtype=torch.float64))


special = st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0, float("nan"), float("inf"), float("-inf"), 1e300, -1e-300])


@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 6), d=st.integers(0, 6), ref_d=st.integers(0, 6), data=st.data())
def test_fuzzed_input_gives_a_value_or_a_clear_error(n: int, d: int, ref_d: int, data) -> None:
    values = data.draw(st.lists(special | st.floats(-2, 2), min_size=n * d, max_size=n * d))
    ref_values = data.draw(st.lists(special | st.floats(-2, 2), min_size=ref_d, max_size=ref_d))
    points = torch.tensor(values, dtype=torch.float64).view(n, d)
    ref = torch.tensor(ref_values, dtype=torch.float64)
    try:
        value = hypervolume(points, ref)
        contributions = hypervolume_contributions(points, ref)
    except (ValueError, TypeError):
        return
    assert d >= 1 and ref_d == d
    assert bool(torch.isfinite(points).all()) and bool(torch.isfinite(ref).all())
    assert value.item() >= 0
    if bool(torch.isfinite(value)):  # finite inputs whose boxes overflow float64 give inf (documented)
        assert bool((contributions >= -1e-12 * value).all())


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 10), d=st.integers(4, 6), data=st.data())
def test_fuzzed_small_sets_in_many_objectives_with_the_gradient(n: int, d: int, data) -> None:
    """The slabs (at most 16 points, 4-6 objectives) on grid-heavy values: value and contributions against
    inclusion-exclusion, and every gradient entry between minus the point's box face and 0 (up to rounding: a
    face is a box less a volume)."""
    grid = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])
    points = torch.tensor(data.draw(st.lists(grid | st.floats(0, 1), min_size=n * d, max_size=n * d)),
                          dtype=torch.float64).view(n, d)
    ref = torch.ones(d, dtype=torch.float64)
    leaf = points.clone().requires_grad_()
    value, contributions = hypervolume_with_contributions(leaf, ref)
    value.backward()
    assert_close(value, reference.hypervolume(points, ref), atol=1e-12, rtol=1e-12, name="hv")
    assert_close(contributions, reference.hypervolume_contributions(points, ref), atol=1e-12, rtol=1e-12,
                 name="contributions")
    sides = (ref - points).clamp(min=0)
    box_faces = torch.stack([torch.cat([sides[:, :k], sides[:, k + 1:]], 1).prod(1) for k in range(d)], 1)
    assert bool((leaf.grad <= 1e-12).all()) and bool((leaf.grad >= -box_faces - 1e-12).all())


# --------------------------------------------------------------------------- independent libraries


def _fronts(d: int, n: int):
    yield "sphere", sphere_front(n, d, seed=n + d)
    yield "cloud", uniform_cloud(n, d, seed=n * d)
    ties = uniform_cloud(n, d, seed=n * d + 1, decimals=1)
    ties[n // 2:] = ties[: n - n // 2]  # duplicates on top of the ties
    yield "ties+duplicates", ties


# d = 2, 3 at n = 1000 and 3000: both sides of the sweeps' switch from std::sort to the radix sort (2048 rows);
# d = 3 at n = 200: the 3-D sweep's array staircase (up to 256 rows; a tree above); d = 5 at n = 600: a 4-D front
# that loses rows to later ones
@pytest.mark.parametrize("d,n", [(2, 1000), (2, 3000), (3, 200), (3, 1000), (3, 3000), (4, 300), (5, 120),
                                 (5, 600), (6, 60)])
def test_against_moocore(d: int, n: int) -> None:
    moocore = pytest.importorskip("moocore", reason="moocore is the reference oracle (pip install moocore)")
    ref = torch.full((d,), 1.1, dtype=torch.float64)
    for name, points in _fronts(d, n):
        expected = moocore.hypervolume(points.numpy(), ref=ref.numpy())
        assert_close(hypervolume(points, ref), torch.tensor(expected, dtype=torch.float64), atol=0, rtol=1e-12,
                     name=f"{name} hv")
        if n <= 300 or d <= 3:  # d = 2 and 3 have their own sweeps for contributions
            ours = hypervolume_contributions(points, ref)
            # maximising the negated points: the same sweeps over negative coordinates
            assert_close(hypervolume(-points, -ref, maximize=True), hypervolume(points, ref), atol=0, rtol=1e-13,
                         name=f"{name} hv maximised")
            assert_close(hypervolume_contributions(-points, -ref, maximize=True), ours, atol=0, rtol=1e-13,
                         name=f"{name} contributions maximised")
            # moocore's exact definition (ignore_dominated=False; its default drops dominated points, which still
            # shape the region of a point that alone dominates them) returns 0 for some contributions below
            # ~2e-8; every row where we differ, and a sample of the others, is checked against HV(S) - HV(S \ i)
            contributions = torch.from_numpy(moocore.hv_contributions(points.numpy(), ref=ref.numpy(),
                                                                      ignore_dominated=False))
            assert_close(ours, contributions, atol=5e-8, rtol=1e-10, name=f"{name} contributions")
            differing = ((ours - contributions).abs() > 1e-13).nonzero().flatten().tolist()
            sample = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:12].tolist()
            whole = moocore.hypervolume(points.numpy(), ref=ref.numpy())
            for i in differing + sample:
                exact = whole - moocore.hypervolume(np.delete(points.numpy(), i, axis=0), ref=ref.numpy())
                assert abs(ours[i].item() - exact) <= 1e-12, (name, i, ours[i].item(), exact)


@pytest.mark.parametrize("d,n", [(4, 200), (5, 100), (6, 50)])
def test_against_pygmo_wfg(d: int, n: int) -> None:
    pygmo = pytest.importorskip("pygmo", reason="pygmo's WFG is the second oracle at d >= 4 (pip install pygmo)")
    ref = torch.full((d,), 1.1, dtype=torch.float64)
    points = sphere_front(n, d, seed=7 * d)
    hv = pygmo.hypervolume(points.numpy())
    assert_close(hypervolume(points, ref), torch.tensor(hv.compute(ref.numpy()), dtype=torch.float64), atol=0,
                 rtol=1e-12, name="hv")
    assert_close(hypervolume_contributions(points, ref), torch.from_numpy(hv.contributions(ref.numpy())),
                 atol=1e-13, rtol=1e-9, name="contributions")
