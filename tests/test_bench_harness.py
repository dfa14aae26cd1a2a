"""The benchmark harness end to end in --quick mode (subprocesses, outputs, failure reporting)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_runner(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.runner", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_quick_logprobs_benchmark_writes_every_output(tmp_path: Path) -> None:
    done = run_runner("logprobs", "--quick", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "logprobs.json").read_text())
    assert result["floors"]["copy_gb_s"] > 0 and result["floors"]["gemm_gflop_s"] > 0
    assert len(result["cases"]) == 4
    for case in result["cases"]:
        assert case["floor_ms"] > 0
        statuses = {r["variant"]: r["status"] for r in case["results"]}
        assert statuses["moafast"] == "ok"
        for r in case["results"]:
            assert r["status"] == "ok" or (r["status"] == "skipped" and r["error"].startswith("not installed"))
        ours = next(r for r in case["results"] if r["ours"])
        assert ours["median_ms"] > 0 and ours["max_abs_error"] < 1e-5
    assert "| moafast (ours) |" in (tmp_path / "logprobs.md").read_text()
    assert (tmp_path / "report.md").is_file()
    pytest.importorskip("matplotlib", reason="plots need matplotlib (installed by `make bench`)")
    assert len(list(tmp_path.glob("logprobs_*.png"))) == 4


def test_failing_variant_is_reported_not_fatal(tmp_path: Path) -> None:
    bench_dir = tmp_path / "bench"
    bench_dir.mkdir()
    for name in ("__init__.py", "harness.py", "report.py", "runner.py"):
        (bench_dir / name).write_text((REPO / "bench" / name).read_text())
    (bench_dir / "bench_toy.py").write_text(
        "from bench.harness import Case, Variant\n"
        "def fine(params, device):\n    return lambda: sum(range(100))\n"
        "def broken(params, device):\n    raise ValueError('deliberately broken variant')\n"
        "def cases(quick, device):\n"
        "    return [Case('toy', {'n': 1}, (Variant('fine', fine, ours=True), Variant('broken', broken),\n"
        "                  Variant('absent', fine, requires=('no_such_module_xyz',)),\n"
        "                  Variant('slow peer', fine, max_calls=2)), bytes_moved=1e6, warmup=1, repeats=7),\n"
        "            Case('pooled', {'n': 2}, (Variant('fine', fine, ours=True), Variant('broken', broken)), rounds=3,\n"
        "                 warmup=0, repeats=4)]\n"
    )
    done = run_runner("toy", "--quick", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 1, "a failed variant must make the run exit non-zero"
    cases = json.loads((tmp_path / "out" / "toy.json").read_text())["cases"]
    results = {r["variant"]: r for r in cases[0]["results"]}
    assert results["fine"]["status"] == "ok" and results["fine"]["repeats"] == 7 and results["fine"]["processes"] == 1
    assert results["slow peer"]["repeats"] == 2, "max_calls caps a slow peer's timed calls"
    assert results["broken"]["status"] == "failed" and "deliberately broken variant" in results["broken"]["error"]
    assert results["absent"] == {"variant": "absent", "ours": False, "floor": False, "status": "skipped",
                                 "error": "not installed: no_such_module_xyz"}
    pooled = {r["variant"]: r for r in cases[1]["results"]}
    assert pooled["fine"]["processes"] == 3 and pooled["fine"]["repeats"] == 12, "calls of every process counted"
    medians = pooled["fine"]["process_medians_ms"]
    assert len(medians) == 3 and pooled["fine"]["median_ms"] == min(medians), "the fastest process's median"
    assert pooled["fine"]["min_ms"] <= min(medians) <= max(medians) <= pooled["fine"]["max_ms"]
    assert pooled["broken"]["status"] == "failed", "a failed process fails the variant"
    assert "median of the fastest of 3 processes per variant" in (tmp_path / "out" / "toy.md").read_text()


def test_moafast_bench_cli_lists_benchmarks() -> None:
    done = subprocess.run([sys.executable, "-m", "moafast.cli", "bench", "--list"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "logprobs" in done.stdout.split()


def test_gpu_check_script_parses() -> None:
    done = subprocess.run(["bash", "-n", str(REPO / "bench" / "gpu_check.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
