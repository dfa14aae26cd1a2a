"""`moafast bench [names] [--device cpu|cuda]`: runs bench/bench_<name>.py against the peers.

Prints a table per case, writes bench/results/<name>.json, <name>.md (for bench/RESULTS.md), PNG plots,
and report.md linking them all.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import report
from bench.harness import REPO_ROOT, Case, Spec, missing_requirements, pool_processes, run_in_child

BENCH_DIR = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(path.stem.removeprefix("bench_") for path in BENCH_DIR.glob("bench_*.py"))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info(device: str, threads: int | None) -> dict[str, Any]:
    """Versions and hardware, read in a child so the parent stays free of torch."""
    probe = (
        "import json, torch, moafast; from moafast._ext import extension as e;"
        "print(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads(),"
        "'moafast': moafast.__version__, 'cpu_isa': e().cpu_isa(),"
        "'cuda_compiled': bool(e().build_info()['cuda_compiled']),"
        "'gpu': torch.cuda.get_device_name() if torch.cuda.is_available() else None}))"
    )
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    info = json.loads(output.stdout.strip().splitlines()[-1])
    if threads:
        info["threads"] = threads
    info.update(cpu=_cpu_model(), cores=os.cpu_count(), date=datetime.date.today().isoformat(), device=device)
    return info


def floor_of(case: Case, floors: dict[str, float]) -> tuple[float | None, str]:
    """The larger of the memory floor and the compute floor, in ms, and which one it is."""
    memory_ms = case.bytes_moved / (floors["copy_gb_s"] * 1e9) * 1e3 if case.bytes_moved else 0.0
    compute_ms = case.flops / (floors["gemm_gflop_s"] * 1e9) * 1e3 if case.flops else 0.0
    if not memory_ms and not compute_ms:
        return None, ""
    return (memory_ms, "bandwidth") if memory_ms >= compute_ms else (compute_ms, "GEMM")


def run_benchmark(name: str, args: argparse.Namespace) -> dict[str, Any]:
    module_name = f"bench.bench_{name}"
    module = importlib.import_module(module_name)

    def spec(case: str, variant: str, warmup: int | None = None, repeats: int | None = None) -> Spec:
        """Counts: the command line's when given, else the case's, else 1 warm-up and 5 repeats."""
        warmup = args.warmup if args.warmup is not None else (1 if warmup is None else warmup)
        repeats = args.repeats if args.repeats is not None else (5 if repeats is None else repeats)
        if args.quick:
            warmup, repeats = 0, min(repeats, 2)
        return Spec(module_name, case, variant, args.device, args.quick, warmup, repeats, args.threads)

    floors = run_in_child(spec("", "@floor"))
    if floors["status"] != "ok":
        raise RuntimeError(f"floor measurement failed: {floors['error']}")
    cases = []
    for case in module.cases(args.quick, args.device):
        floor_ms, floor_kind = floor_of(case, floors)
        runnable = [variant for variant in case.variants if not missing_requirements(variant)]
        runs: dict[str, list[dict[str, Any]]] = {variant.name: [] for variant in runnable}
        for round_index in range(case.rounds):
            for variant in runnable:
                process = f" (process {round_index + 1} of {case.rounds})" if case.rounds > 1 else ""
                print(f"  {case.name} / {variant.name}{process} ...", flush=True)
                runs[variant.name].append(run_in_child(spec(case.name, variant.name, case.warmup, case.repeats)))
        results = []
        for variant in case.variants:
            if variant.name in runs:
                result = pool_processes(runs[variant.name])
            else:
                result = {"status": "skipped", "error": f"not installed: {', '.join(missing_requirements(variant))}"}
            results.append({"variant": variant.name, "ours": variant.ours, "floor": variant.floor, **result})
        cases.append({"case": case.name, "params": case.params, "bytes_moved": case.bytes_moved,
                      "flops": case.flops, "output_bytes": case.output_bytes, "floor_ms": floor_ms,
                      "floor_kind": floor_kind, "rounds": case.rounds, "results": results})
    return {"name": name, "device": args.device, "quick": args.quick, "floors": floors,
            "machine": machine_info(args.device, args.threads), "cases": cases}


def write_outputs(benchmark: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    name = benchmark["name"]
    (out_dir / f"{name}.json").write_text(json.dumps(benchmark, indent=1))
    (out_dir / f"{name}.md").write_text(report.markdown(benchmark))
    return report.plot(benchmark, out_dir)


def write_index(out_dir: Path) -> Path:
    sections = ["# moafast benchmark report", ""]
    for markdown in sorted(out_dir.glob("*.md")):
        if markdown.name == "report.md":
            continue
        sections += [markdown.read_text(), ""]
        sections += [f"![{png.stem}]({png.name})" for png in sorted(out_dir.glob(f"{markdown.stem}_*.png"))]
        sections.append("")
    index = out_dir / "report.md"
    index.write_text("\n".join(sections))
    return index


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="moafast bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(available())})")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls per variant (default: the case's, else 5)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed calls after the first (default: the case's, else 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in each child (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few repeats (smoke test, dry run)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results", help="output directory")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available())}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print("\n".join(available()))
        return 0
    failed = False
    for name in args.names or available():
        print(f"== {name} ({args.device}{', quick' if args.quick else ''})", flush=True)
        benchmark = run_benchmark(name, args)
        report.print_tables(benchmark)
        plots = write_outputs(benchmark, args.out)
        print(f"\nwrote {args.out / (name + '.json')}, {name}.md and {len(plots)} plot(s)")
        failed |= any(r["status"] == "failed" for case in benchmark["cases"] for r in case["results"])
    print(f"report: {write_index(args.out)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
