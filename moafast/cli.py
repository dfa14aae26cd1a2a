"""The `moafast` command: `moafast bench ...` (benchmarks from the source checkout) and `moafast env`."""

from __future__ import annotations

import sys
from pathlib import Path


def _bench_directory() -> Path:
    here = Path.cwd() / "bench"
    if (here / "runner.py").is_file():
        return here
    source_tree = Path(__file__).resolve().parent.parent / "bench"
    if (source_tree / "runner.py").is_file():
        return source_tree
    raise SystemExit(
        "moafast bench: no bench/ directory found in the current directory or next to the moafast sources; "
        "the benchmarks ship with the source checkout: run this from a clone of the repository"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: moafast {bench,env} ...\n  bench  run benchmarks against the peers (moafast bench --help)\n"
              "  env    print versions, compiled kernels and usable devices")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "bench":
        sys.path.insert(0, str(_bench_directory().parent))
        from bench.runner import main as bench_main

        return bench_main(rest)
    if command == "env":
        from moafast.env import main as env_main

        env_main()
        return 0
    print(f"moafast: unknown command {command!r}; expected bench or env", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
