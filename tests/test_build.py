"""The compiled module's boundary: no libtorch linkage, one OpenMP runtime, clear CUDA diagnostics."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

import moafast
from moafast._ext import extension, require_cuda_kernels


def _needed_libraries(path: str) -> list[str]:
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.fail("readelf (binutils) is needed to inspect the built module's dependencies")
    dynamic = subprocess.run([readelf, "-d", path], check=True, capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic)


def test_compiled_module_links_no_libtorch() -> None:
    needed = _needed_libraries(extension().__file__)
    assert needed, "readelf found no NEEDED entries; the check would be vacuous"
    forbidden = [lib for lib in needed if re.match(r"lib(torch|c10|cudart|cuda)\b", lib)]
    assert forbidden == [], f"moafast._C must not link {forbidden}; it needs {needed}"


def test_one_openmp_runtime_shared_with_torch() -> None:
    maps = open("/proc/self/maps").read()
    runtimes = sorted(set(re.findall(r"\S*lib(?:gomp|iomp5|omp)[\w.-]*\.so[\w.]*", maps)))
    assert len(runtimes) == 1, f"expected one OpenMP runtime in the process, found {runtimes}"


def test_build_info_reports_the_build() -> None:
    info = extension().build_info()
    assert info["version"] == moafast.__version__
    assert info["openmp"] >= 201307
    if info["cuda_compiled"]:
        assert "90" in info["cuda_architectures"] and "80" in info["cuda_architectures"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where no GPU is usable")
def test_cuda_tensor_without_usable_gpu_explains_why() -> None:
    with pytest.raises(RuntimeError, match=r"needs moafast's CUDA kernels.*(no CUDA driver|driver|built without|no CUDA device)"):
        require_cuda_kernels(torch.device("cuda", 0))


def test_env_report_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "moafast.env"], check=True, capture_output=True, text=True)
    for field in ("moafast", "torch", "CUDA kernels compiled", "CPU ISA in use", "OpenMP threads"):
        assert field in result.stdout


def test_forcing_an_unsupported_isa_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown CPU ISA 'sse9'"):
        extension().set_cpu_isa("sse9")
    assert extension().cpu_isa() in extension().cpu_isas_usable()


@pytest.mark.skipif(os.environ.get("MOAFAST_CUDA") != "ON", reason="only when the build was asked to force CUDA ON")
def test_forced_cuda_build_compiled_the_cuda_kernels() -> None:
    assert extension().build_info()["cuda_compiled"], "MOAFAST_CUDA=ON but the module has no CUDA kernels"
