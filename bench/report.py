"""Turns a benchmark's results into a printed table, a markdown file and PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLUMNS = ("variant", "first ms", "median ms", "min ms", "max ms", "x floor", "x moafast", "peak MiB", "extra MiB",
           "max abs err")


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def case_rows(case: dict[str, Any]) -> list[list[str]]:
    ours = next((r for r in case["results"] if r.get("ours") and r["status"] == "ok"), None)
    rows = []
    for result in case["results"]:
        if result["status"] != "ok":
            rows.append([result["variant"], f"{result['status']}: {result.get('error', '')}"] + [""] * 8)
            continue
        floor = case.get("floor_ms")
        output_mib = case.get("output_bytes", 0.0) / 2**20
        rows.append([
            result["variant"] + (" (ours)" if result.get("ours") else ""),
            _fmt(result["first_ms"]),
            _fmt(result["median_ms"]),
            _fmt(result["min_ms"]),
            _fmt(result["max_ms"]),
            _fmt(result["median_ms"] / floor) if floor else "-",
            _fmt(result["median_ms"] / ours["median_ms"]) if ours else "-",
            _fmt(result["peak_extra_mib"], 1),
            _fmt(result["peak_extra_mib"] - output_mib, 1) if output_mib else "-",
            "-" if result["max_abs_error"] is None else f"{result['max_abs_error']:.1e}",
        ])
    if case.get("floor_ms"):
        rows.append([f"floor ({case['floor_kind']})", "", _fmt(case["floor_ms"]), "", "", "1.00", "", "", "", ""])
    return rows


def case_title(case: dict[str, Any]) -> str:
    params = ", ".join(f"{k}={v}" for k, v in case["params"].items())
    pooled = (f"; median of the fastest of {case['rounds']} processes per variant" if case.get("rounds", 1) > 1
              else "")
    return f"{case['case']} ({params}{pooled})"


def markdown(benchmark: dict[str, Any]) -> str:
    machine = benchmark["machine"]
    floors = benchmark["floors"]
    lines = [
        f"### {benchmark['name']} ({benchmark['device']}) - {machine['date']}",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine.get('gpu') or 'no GPU'}; "
        f"torch {machine['torch']}, threads {machine['threads']}, moafast CPU ISA {machine['cpu_isa']}, "
        f"CUDA kernels compiled: {machine['cuda_compiled']}.",
        f"Floors measured in this run: copy bandwidth {floors['copy_gb_s']:.1f} GB/s, "
        f"float32 GEMM {floors['gemm_gflop_s']:.0f} GFLOP/s ({floors['gemm_size']}^3).",
        "`x floor` = median / floor; `x moafast` = median / moafast's median (above 1: moafast is faster); "
        "`peak MiB` = peak resident memory above the inputs; `extra MiB` = that minus the results every variant "
        "must hold (the gradients), where the case states them.",
        "",
    ]
    for case in benchmark["cases"]:
        lines += [f"**{case_title(case)}**", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in case_rows(case)]
        lines.append("")
    return "\n".join(lines)


def print_tables(benchmark: dict[str, Any]) -> None:
    for case in benchmark["cases"]:
        rows = [list(COLUMNS)] + case_rows(case)
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
        print(f"\n{case_title(case)}")
        for index, row in enumerate(rows):
            print("  " + "  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in
                                   enumerate(zip(row, widths))))
            if index == 0:
                print("  " + "  ".join("-" * width for width in widths))


def plot(benchmark: dict[str, Any], out_dir: Path) -> list[Path]:
    """One bar chart per case: median time per variant, the floor as a dashed line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    for case in benchmark["cases"]:
        ok = [r for r in case["results"] if r["status"] == "ok"]
        if not ok:
            continue
        figure, axes = plt.subplots(figsize=(6, 3.2))
        names = [r["variant"] for r in ok]
        medians = [r["median_ms"] for r in ok]
        colors = ["tab:green" if r.get("ours") else "tab:gray" for r in ok]
        axes.barh(names, medians, color=colors)
        if case.get("floor_ms"):
            axes.axvline(case["floor_ms"], color="tab:red", linestyle="--", label=f"floor ({case['floor_kind']})")
            axes.legend(loc="lower right", fontsize=8)
        if max(medians) / max(min(medians), 1e-9) > 30:
            axes.set_xscale("log")
        axes.set_xlabel("median ms (lower is better)")
        axes.set_title(case_title(case), fontsize=9)
        figure.tight_layout()
        path = out_dir / f"{benchmark['name']}_{case['case']}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written
