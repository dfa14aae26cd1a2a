"""Hypervolume on CUDA tensors: the one-thread-per-set kernel (n <= 16, d = 2, 3) and the host path for larger
sets, against the CPU (whose small-set code is the same header)."""

from __future__ import annotations

import pytest
import torch

from moafast.ops import hypervolume, hypervolume_contributions
from moafast.testing import assert_close

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("n,d", [(8, 2), (8, 3), (16, 3), (40, 3), (9, 4)])
@pytest.mark.parametrize("maximize", [False, True])
def test_cuda_matches_cpu(n: int, d: int, maximize: bool) -> None:
    g = torch.Generator().manual_seed(n * d)
    points = torch.round(torch.rand(300, n, d, generator=g, dtype=torch.float64) * 16) / 16  # ties, duplicates
    mask = torch.rand(300, n, generator=g) > 0.1
    ref = torch.rand(300, d, generator=g, dtype=torch.float64) * 0.1 + (0.0 if maximize else 1.0)
    if maximize:
        ref = ref - 0.1
    outputs = {}
    for device in ("cpu", "cuda"):
        leaf = points.to(device).requires_grad_()
        r = ref.to(device).requires_grad_()
        value = hypervolume(leaf, r, maximize=maximize, mask=mask.to(device))
        value.sum().backward()
        contributions = hypervolume_contributions(points.to(device), ref.to(device), maximize=maximize,
                                                  mask=mask.to(device))
        assert value.device.type == device
        outputs[device] = (value, contributions, leaf.grad, r.grad)
    for name, gpu, cpu in zip(("hv", "contributions", "d points", "d ref"), outputs["cuda"], outputs["cpu"]):
        assert_close(gpu.cpu(), cpu, atol=1e-12, rtol=1e-12, name=name)
