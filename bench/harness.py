"""Benchmark machinery: every variant of every case runs in its own subprocess.

A benchmark module ``bench/bench_<name>.py`` defines ``cases(quick: bool, device: str) -> list[Case]``.
Each :class:`Case` names its shape parameters, the bytes it must move and/or the FLOPs it must do (for the
physical floor), and its :class:`Variant`\\ s. A variant's ``setup(params, device)`` builds the inputs and
returns the zero-argument callable to time, or ``(callable, error_fn)`` where ``error_fn()`` returns the max
abs error of the variant's result against a float64 reference (computed after timing). A variant that
names ``requires`` modules which are not installed is reported as skipped with the reason.

In the child (``python -m bench.harness '<json spec>'``): inputs are built, the RSS high-water mark is
reset (``/proc/self/clear_refs``), the first call is timed separately, then warm-ups, then timed repeats.
Peak extra memory is ``ru_maxrss`` after the calls minus before them (CUDA: ``max_memory_allocated`` above
the inputs). The parent never imports torch, so its own memory peak cannot leak into the children's.
A case with ``rounds > 1`` runs every variant in that many processes, the variants interleaved round by round,
and reports the median of the fastest process (:func:`pool_processes`).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CHILD_TIMEOUT_S = 900


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    setup: Callable[[dict[str, Any], str], Any]
    requires: tuple[str, ...] = ()
    ours: bool = False
    floor: bool = False  # a physical-floor measurement (bare GEMMs, a copy), not a peer
    max_calls: int | None = None  # a very slow peer: its warm-up and its timed calls, each at most this many


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    params: dict[str, Any]
    variants: tuple[Variant, ...]
    bytes_moved: float = 0.0
    flops: float = 0.0
    output_bytes: float = 0.0  # results every variant must hold (e.g. the gradients): "extra MiB" excludes them
    warmup: int | None = None
    repeats: int | None = None
    # Processes per variant, the variants interleaved round by round. This VM runs some processes about twice
    # as slow as others, for their whole life and whichever library they time (bench/RESULTS.md); the median of
    # the fastest of several processes measures every variant outside those slow processes alike.
    rounds: int = 1


@dataclasses.dataclass(frozen=True)
class Spec:
    """What a child process runs: one variant of one case, or a floor measurement (variant '@floor')."""

    module: str
    case: str
    variant: str
    device: str
    quick: bool
    warmup: int
    repeats: int
    threads: int | None


# ---------------------------------------------------------------- child side


def _reset_peak_rss() -> int:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass  # not Linux or not permitted: the peak then includes earlier transients
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _synchronizer(device: str) -> Callable[[], None]:
    import torch

    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def _time_calls(fn: Callable[[], Any], sync: Callable[[], None], count: int) -> list[float]:
    times = []
    for _ in range(count):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def find_case(module_name: str, case_name: str, quick: bool, device: str) -> Case:
    module = importlib.import_module(module_name)
    for case in module.cases(quick, device):
        if case.name == case_name:
            return case
    raise KeyError(f"{module_name} has no case {case_name!r}")


def run_variant(spec: Spec) -> dict[str, Any]:
    import torch

    if spec.threads:
        torch.set_num_threads(spec.threads)
    case = find_case(spec.module, spec.case, spec.quick, spec.device)
    variant = next(v for v in case.variants if v.name == spec.variant)
    prepared = variant.setup(case.params, spec.device)
    fn, error_fn = prepared if isinstance(prepared, tuple) else (prepared, None)
    sync = _synchronizer(spec.device)
    if spec.device == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _reset_peak_rss()
    first = _time_calls(fn, sync, 1)[0]
    warmup = case.warmup if case.warmup is not None else spec.warmup
    repeats = case.repeats if case.repeats is not None else spec.repeats
    if variant.max_calls is not None:
        warmup, repeats = min(warmup, variant.max_calls), min(repeats, variant.max_calls)
    _time_calls(fn, sync, warmup)
    times = _time_calls(fn, sync, repeats)
    if spec.device == "cuda":
        peak_mib = (torch.cuda.max_memory_allocated() - before) / 2**20
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return {
        "first_ms": first,
        "times_ms": times,
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "repeats": len(times),
        "peak_extra_mib": peak_mib,
        "max_abs_error": error_fn() if error_fn else None,
    }


def measure_floors(device: str, quick: bool) -> dict[str, float]:
    """Copy bandwidth (GB/s, read + write bytes) and float32 GEMM rate (GFLOP/s), best of several runs."""
    import torch

    sync = _synchronizer(device)
    elements = (16 if quick else 64) * 2**20  # 64 Mi floats = 256 MiB per buffer
    src = torch.randn(elements, device=device)
    dst = torch.empty_like(src)
    copy_ms = min(_time_calls(lambda: dst.copy_(src), sync, 10))
    bandwidth = 2 * src.numel() * 4 / (copy_ms / 1e3) / 1e9
    size = 512 if quick else (8192 if device == "cuda" else 2048)
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    gemm_ms = min(_time_calls(lambda: torch.mm(a, b), sync, 5))
    return {"copy_gb_s": bandwidth, "gemm_gflop_s": 2 * size**3 / (gemm_ms / 1e3) / 1e9, "gemm_size": size}


def child_main(argv: list[str]) -> None:
    spec = Spec(**json.loads(argv[0]))
    result = measure_floors(spec.device, spec.quick) if spec.variant == "@floor" else run_variant(spec)
    print("@result " + json.dumps(result))


# ---------------------------------------------------------------- parent side


def missing_requirements(variant: Variant) -> list[str]:
    return [name for name in variant.requires if importlib.util.find_spec(name) is None]


def pool_processes(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One variant measured in one or more processes: the median of the process with the lowest median (every
    process's median listed beside it), min and max over all timed calls, the first process's cold call, the
    highest peak; a failed process fails the variant."""
    failed = next((run for run in runs if run["status"] != "ok"), None)
    if failed is not None:
        return failed
    times = [t for run in runs for t in run["times_ms"]]
    errors = [run["max_abs_error"] for run in runs if run["max_abs_error"] is not None]
    return {
        "status": "ok",
        "first_ms": runs[0]["first_ms"],
        "median_ms": min(run["median_ms"] for run in runs),
        "min_ms": min(times),
        "max_ms": max(times),
        "repeats": len(times),
        "processes": len(runs),
        "process_medians_ms": [run["median_ms"] for run in runs],
        "peak_extra_mib": max(run["peak_extra_mib"] for run in runs),
        "max_abs_error": max(errors) if errors else None,
    }


def run_in_child(spec: Spec) -> dict[str, Any]:
    """Runs `spec` in a fresh interpreter; returns its result, or {'status': 'failed', 'error': ...}."""
    command = [sys.executable, "-m", "bench.harness", json.dumps(dataclasses.asdict(spec))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    try:
        done = subprocess.run(
            command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return {"status": "failed", "error": f"timed out after {CHILD_TIMEOUT_S} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("@result ")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "failed", "error": tail[:300]}
    return {"status": "ok", **json.loads(lines[-1].removeprefix("@result "))}


if __name__ == "__main__":
    child_main(sys.argv[1:])
