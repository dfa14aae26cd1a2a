"""Exact hypervolume and contributions against moocore, pygmo (WFG at d >= 4), pymoo and botorch, one
thread, on points of the positive orthant of the unit sphere (all nondominated), reference 1.1; and the
HaM-shaped batch: 10,000 sets of 8 points in 3 objectives (and in 4 and 5), value + contributions + gradient,
against a Python loop over each peer (value + contributions: no peer has the gradient)."""

from __future__ import annotations

from typing import Any

from bench.harness import Case, Variant


def _front(params: dict[str, Any]):
    import torch

    x = torch.rand(params["n"], params["d"], generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 1e-3
    return x / x.norm(dim=1, keepdim=True), torch.full((params["d"],), 1.1, dtype=torch.float64)


def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _ours(params, device):
    from moafast.ops import hypervolume, hypervolume_contributions

    _single_thread()
    points, ref = _front(params)
    points, ref = points.to(device), ref.to(device)
    op = hypervolume if params["kind"] == "hv" else hypervolume_contributions

    def error() -> float | None:
        try:
            import moocore
        except ImportError:
            return None
        if params["kind"] == "hv":
            return abs(float(op(points, ref)) - moocore.hypervolume(points.cpu().numpy(), ref=ref.cpu().numpy()))
        return None

    return (lambda: op(points, ref)), error


def _moocore(params, device):
    import moocore

    points, ref = (t.numpy() for t in _front(params))
    if params["kind"] == "hv":
        return lambda: moocore.hypervolume(points, ref=ref)
    return lambda: moocore.hv_contributions(points, ref=ref)  # its fast path; the same values on a front


def _pygmo(params, device):
    import pygmo

    points, ref = (t.numpy() for t in _front(params))
    if params["kind"] == "hv":
        return lambda: pygmo.hypervolume(points).compute(ref)
    return lambda: pygmo.hypervolume(points).contributions(ref)


def _pymoo(params, device):
    from pymoo.indicators.hv import HV

    points, ref = (t.numpy() for t in _front(params))
    indicator = HV(ref_point=ref)
    return lambda: indicator(points)


def _botorch(params, device):
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    points, ref = _front(params)
    hv = Hypervolume(ref_point=-ref)  # botorch maximises
    return lambda: hv.compute(-points)


def _batch(params, device="cpu"):
    import torch

    return (torch.rand(params["sets"], params["n"], params["d"], generator=torch.Generator().manual_seed(0),
                       dtype=torch.float64).to(device), torch.ones(params["d"], dtype=torch.float64, device=device))


def _ours_batch(params, device, threads=1):
    import torch

    from moafast.ops import hypervolume_with_contributions

    if threads:
        torch.set_num_threads(threads)
    points, ref = _batch(params, device)

    def run() -> None:
        leaf = points.requires_grad_()
        value, _ = hypervolume_with_contributions(leaf, ref)
        value.sum().backward()
        leaf.grad = None

    return run


def _ours_batch_two_threads(params, device):
    return _ours_batch(params, device, threads=2)


def _ours_batch_gpu(params, device):
    return _ours_batch(params, device, threads=0)


def _ours_batch_all_cpu_threads(params, device):
    import os

    return _ours_batch(params, "cpu", threads=os.cpu_count())


def _moocore_loop(params, device):
    import moocore

    points, ref = _batch(params)
    sets, r = list(points.numpy()), ref.numpy()

    def run() -> None:
        for s in sets:
            moocore.hypervolume(s, ref=r)
            moocore.hv_contributions(s, ref=r)

    return run


def _pygmo_loop(params, device):
    import pygmo

    points, ref = _batch(params)
    sets, r = list(points.numpy()), ref.numpy()

    def run() -> None:
        for s in sets:
            hv = pygmo.hypervolume(s)
            hv.compute(r)
            hv.contributions(r)

    return run


def _gpu_cases(quick: bool) -> list[Case]:
    """The batched case at 1e5 and 1e6 sets on the GPU (one thread per set), beside the CPU with all its
    threads and, at 1e5, the loop over moocore; sets per second = sets / median."""
    out = []
    for sets in ((1000,) if quick else (100_000, 1_000_000)):
        variants = [Variant("moafast CUDA", _ours_batch_gpu, ours=True),
                    Variant("moafast CPU, all threads", _ours_batch_all_cpu_threads)]
        if sets <= 100_000:
            variants.append(Variant("moocore loop (value + contributions)", _moocore_loop, requires=("moocore",)))
        out.append(Case(f"batch {sets} sets", {"sets": sets, "n": 8, "d": 3}, tuple(variants), warmup=1,
                        repeats=1 if quick else 3))
    return out


def cases(quick: bool, device: str) -> list[Case]:
    if device == "cuda":
        return _gpu_cases(quick)
    ours = Variant("moafast", _ours, ours=True)
    moocore = Variant("moocore", _moocore, requires=("moocore",))
    pygmo = Variant("pygmo", _pygmo, requires=("pygmo",))
    pymoo = Variant("pymoo HV", _pymoo, requires=("pymoo",))
    botorch = Variant("botorch Hypervolume", _botorch, requires=("botorch",), max_calls=1)  # seconds per call
    if quick:
        cells = [("hv", 2, 100), ("hv", 4, 50), ("contributions", 3, 50)]
    else:
        cells = ([("hv", d, n) for d in (2, 3) for n in (1000, 10_000, 100_000)]
                 + [("hv", d, n) for d in (4, 5, 6) for n in (100, 1000)]
                 + [("contributions", d, n) for d in (2, 3) for n in (1000, 10_000)]
                 + [("contributions", d, 1000) for d in (4, 5, 6)])
    out = []
    for kind, d, n in cells:
        variants = [ours, moocore, pygmo]
        if kind == "hv":
            variants.append(pymoo)
            if d <= 3 and n <= 1000:
                variants.append(botorch)
        elif d == 6:
            variants.remove(moocore)  # n + 1 full recomputations: more than 240 s at n = 1000
        # Calls of under a millisecond: 5 warm-ups and 100 timed calls (fewer let one burst of this VM's noise
        # move the median); up to tens of ms: 2 and 10; slower: one timed call. Every variant alike (but botorch);
        # the cold first call is its own column.
        fast = (d <= 3 and n <= 1000) or n <= 100
        slow = n >= 100_000 or (kind == "contributions" and d >= 4) or (d == 6 and n >= 1000)
        warmup, repeats = (0, 1) if quick or slow else (5, 100) if fast else (2, 10)
        # Every cell but the slowest runs in three processes per variant (harness.Case.rounds): a median moves
        # with the speed of the process it happens to run in, up to 2x on this VM, for every library alike.
        out.append(Case(f"{kind} d{d} n{n}", {"kind": kind, "d": d, "n": n}, tuple(variants), warmup=warmup,
                        repeats=repeats, rounds=1 if quick or slow else 3))
    # HaM's fronts: 3 objectives (the target), then 4 and 5 (the slabs over the 3-D sweep).
    for d in (3,) if quick else (3, 4, 5):
        batch = {"sets": 100 if quick else 10_000, "n": 8, "d": d}
        out.append(Case("batch value+contributions+grad" + ("" if d == 3 else f" d{d}"), batch,
                        (Variant("moafast, 1 thread", _ours_batch, ours=True),
                         Variant("moafast, 2 threads", _ours_batch_two_threads),
                         Variant("moocore loop (value + contributions)", _moocore_loop, requires=("moocore",)),
                         Variant("pygmo loop (value + contributions)", _pygmo_loop, requires=("pygmo",))),
                        warmup=0 if quick else 2, repeats=1 if quick else 9, rounds=1 if quick else 3))
    return out
