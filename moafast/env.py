"""``python -m moafast.env``: what this moafast build can do here (attach it to bug reports)."""

from __future__ import annotations

import os
import platform

import torch

from moafast import __version__
from moafast._ext import cuda_runtime_info, extension, extension_available


def report() -> dict[str, object]:
    """moafast, torch and CUDA versions, which kernels were compiled and whether a GPU is usable."""
    info: dict[str, object] = {
        "moafast": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch CUDA": torch.version.cuda or "none (CPU build)",
        "torch sees a GPU": torch.cuda.is_available(),
        "OpenMP threads (torch.get_num_threads)": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
    }
    if not extension_available():
        info["compiled kernels"] = "NOT IMPORTABLE: rebuild with `pip install --no-build-isolation -e .`"
        return info
    build = extension().build_info()
    cuda = cuda_runtime_info()
    info["compiled kernels"] = f"moafast._C {build['version']} ({extension().__file__})"
    info["CPU ISA in use"] = f"{extension().cpu_isa()} (usable: {', '.join(extension().cpu_isas_usable())})"
    info["OpenMP version (build)"] = build["openmp"]
    info["CUDA kernels compiled"] = bool(build["cuda_compiled"])
    if build["cuda_compiled"]:
        info["CUDA architectures"] = build["cuda_architectures"]
        info["CUDA runtime (static, in moafast._C)"] = _cuda_version(cuda["runtime_version"])
        info["CUDA driver"] = _cuda_version(cuda["driver_version"]) if cuda["driver_version"] else "none"
        info["CUDA devices usable by moafast"] = cuda["device_count"] or f"0 ({cuda['error']})"
    if torch.cuda.is_available():
        info["GPUs"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return info


def _cuda_version(code: int) -> str:
    return f"{code // 1000}.{code % 1000 // 10}"


def main() -> None:
    info = report()
    width = max(len(key) for key in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
