"""Running ``moafast`` commands in a subprocess for the tests: with the tests directory importable (so that
``tiny_lm:...`` reward functions resolve) and, for several processes, under ``torch.distributed.run`` on a
free port (gloo on the CPU, one OpenMP thread each)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(arguments: list[str], cwd: Path, processes: int = 1, check: bool = True) -> subprocess.CompletedProcess:
    """``moafast <arguments>`` in ``cwd``; with ``check``, a non-zero exit fails with the output's tail."""
    launcher = [sys.executable, "-m", "moafast.cli"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
                    f"--master_port={free_port()}", "-m", "moafast.cli"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run(launcher + arguments, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result
