"""moafast against moocore in one process, interleaved, for the hypervolume cells whose single-process medians
this VM's noise moves the most: `python -m bench.hypervolume_interleaved`. Same inputs as bench_hypervolume
(points on the positive orthant of the unit sphere, reference 1.1, float64, one thread); 3 warm-ups, then 5
rounds that time each variant over 5-200 calls in turn; prints the median of the rounds."""

from __future__ import annotations

import statistics
import time

CELLS = [("hv", 2, 1000), ("hv", 3, 1000), ("hv", 4, 100), ("hv", 4, 1000), ("hv", 5, 100), ("hv", 5, 1000),
         ("hv", 6, 100), ("contributions", 2, 1000), ("contributions", 3, 1000), ("contributions", 3, 10_000)]


def main() -> None:
    import moocore
    import torch

    from bench.bench_hypervolume import _front
    from moafast.ops import hypervolume, hypervolume_contributions

    torch.set_num_threads(1)
    print("| cell | moafast ms | moocore ms | moafast / moocore |\n|---|---|---|---|")
    for kind, d, n in CELLS:
        points, ref = _front({"n": n, "d": d})
        array, ref_array = points.numpy(), ref.numpy()
        if kind == "hv":
            variants = {"moafast": lambda: hypervolume(points, ref),
                        "moocore": lambda: moocore.hypervolume(array, ref=ref_array)}
        else:
            variants = {"moafast": lambda: hypervolume_contributions(points, ref),
                        "moocore": lambda: moocore.hv_contributions(array, ref=ref_array)}
        calls = max(5, min(200, int(0.2 / (1e-6 * n * d))))
        rounds: dict[str, list[float]] = {name: [] for name in variants}
        for fn in variants.values():
            for _ in range(3):
                fn()
        for _ in range(5):
            for name, fn in variants.items():
                start = time.perf_counter()
                for _ in range(calls):
                    fn()
                rounds[name].append((time.perf_counter() - start) / calls * 1e3)
        ours, peer = (statistics.median(rounds[name]) for name in variants)
        print(f"| {kind} d{d} n{n} | {ours:.3g} | {peer:.3g} | {ours / peer:.2f} |")


if __name__ == "__main__":
    main()
