"""Loading of the compiled module and the checks that make its absence or a missing GPU driver clear."""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import torch  # noqa: F401  (loads torch's OpenMP runtime first, so the extension shares it)

try:
    from moafast import _C as _compiled
except ImportError as error:  # pragma: no cover - exercised only on broken installs
    _compiled = None
    _import_error: ImportError | None = error
else:
    _import_error = None


def extension() -> ModuleType:
    """The compiled module, or an ImportError that says how to build it."""
    if _compiled is None:
        raise ImportError(
            "moafast's compiled kernels (moafast._C) could not be imported: "
            f"{_import_error}. Build them with `pip install --no-build-isolation -e .` "
            "(needs cmake, a C++17 compiler, scikit-build-core and pybind11; nvcc optional)."
        ) from _import_error
    return _compiled


def extension_available() -> bool:
    return _compiled is not None


@functools.cache
def cuda_runtime_info() -> dict[str, Any]:
    """What the CUDA runtime inside moafast._C sees: compiled, versions, device count, error."""
    return dict(extension().cuda_runtime_info())


def require_cuda_kernels(device: torch.device) -> None:
    """Raises RuntimeError explaining why the CUDA kernels cannot run on `device`, if they cannot."""
    info = cuda_runtime_info()
    if not info["compiled"]:
        raise RuntimeError(
            f"a tensor on {device} needs moafast's CUDA kernels, but this build has none "
            "(nvcc was not found at build time, or MOAFAST_CUDA=OFF). Rebuild with nvcc on PATH: "
            "MOAFAST_CUDA=ON pip install --no-build-isolation -e ."
        )
    if info["device_count"] == 0:
        raise RuntimeError(
            f"a tensor on {device} needs moafast's CUDA kernels, which cannot run here: {info['error']}."
        )
