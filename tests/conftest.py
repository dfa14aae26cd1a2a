from __future__ import annotations

import pytest
import torch

from moafast._ext import extension


def _cuda_usable() -> tuple[bool, str]:
    if not torch.cuda.is_available():
        return False, "no CUDA device: torch.cuda.is_available() is False (CUDA kernels are compiled-only here)"
    info = extension().cuda_runtime_info()
    if not info["compiled"] or info["device_count"] == 0:
        return False, f"moafast CUDA kernels unusable: {info['error']}"
    return True, ""


CUDA_USABLE, CUDA_REASON = _cuda_usable()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_cuda = pytest.mark.skip(reason=CUDA_REASON)
    for item in items:
        if "cuda" in item.keywords and not CUDA_USABLE:
            item.add_marker(skip_cuda)


@pytest.fixture(params=extension().cpu_isas_usable())
def cpu_isa(request: pytest.FixtureRequest):
    """Runs a test once per CPU instruction-set build this processor can execute."""
    extension().set_cpu_isa(request.param)
    yield request.param
    extension().set_cpu_isa("auto")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
