"""`python -m bench.summary DIR`: a short table of every case in DIR/*.json (used last by gpu_check.sh)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def summarise(directory: Path) -> list[str]:
    lines = [f"{'benchmark/case':<44} {'moafast ms':>10} {'x floor':>8} {'best peer':>28} {'x moafast':>9}"]
    for path in sorted(directory.glob("*.json")):
        benchmark = json.loads(path.read_text())
        for case in benchmark["cases"]:
            ok = [r for r in case["results"] if r["status"] == "ok"]
            ours = next((r for r in ok if r["ours"]), None)
            peers = [r for r in ok if not r["ours"] and not r.get("floor") and not r["variant"].startswith("moafast")]
            best = min(peers, key=lambda r: r["median_ms"]) if peers else None
            floor = case.get("floor_ms")
            lines.append(
                f"{benchmark['name'] + '/' + case['case']:<44} "
                f"{ours['median_ms'] if ours else float('nan'):>10.3f} "
                f"{ours['median_ms'] / floor if ours and floor else float('nan'):>8.2f} "
                f"{best['variant'] if best else '-':>28} "
                f"{best['median_ms'] / ours['median_ms'] if best and ours else float('nan'):>9.2f}"
            )
    return lines


if __name__ == "__main__":
    found = summarise(Path(sys.argv[1]))
    print("\n".join(found))
    sys.exit(0 if len(found) > 1 else 1)
