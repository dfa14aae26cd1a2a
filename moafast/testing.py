"""Test helpers shared by moafast's tests: a per-dtype tolerance table and readable comparisons."""

from __future__ import annotations

import torch

# (atol, rtol) for results produced *in* the given dtype (outputs stored as bfloat16 carry its rounding).
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (2e-5, 2e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
}


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    return TOLERANCES[dtype]


def _describe_mismatches(actual: torch.Tensor, expected: torch.Tensor, bad: torch.Tensor, limit: int) -> str:
    indices = bad.nonzero()[:limit]
    lines = []
    for index in indices:
        at = tuple(index.tolist())
        a, e = actual[at].item(), expected[at].item()
        lines.append(f"  at {list(at)}: actual {a!r}, expected {e!r}, diff {abs(a - e)!r}")
    return "\n".join(lines)


def assert_close(
    actual: torch.Tensor,
    expected: torch.Tensor,
    *,
    dtype: torch.dtype | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    name: str = "tensor",
    max_report: int = 8,
) -> None:
    """Elementwise ``|a - e| <= atol + rtol * |e|`` with NaN matching NaN and infinities matching exactly.

    Tolerances default to :data:`TOLERANCES` for ``dtype`` (or ``actual.dtype``). On failure the message
    lists how many elements differ, the largest difference and the first ``max_report`` mismatches.
    """
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {list(actual.shape)} != expected {list(expected.shape)}")
    default_atol, default_rtol = tolerance(dtype or actual.dtype)
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol
    a = actual.detach().to(torch.float64).cpu()
    e = expected.detach().to(torch.float64).cpu()
    both_nan = a.isnan() & e.isnan()
    same_inf = a.isinf() & e.isinf() & (a == e)
    finite = a.isfinite() & e.isfinite()
    within = torch.zeros_like(a, dtype=torch.bool)
    within[finite] = (a[finite] - e[finite]).abs() <= atol + rtol * e[finite].abs()
    bad = ~(both_nan | same_inf | within)
    if bad.any():
        diff = (a - e).abs()
        worst = diff[finite].max().item() if finite.any() else float("nan")
        raise AssertionError(
            f"{name}: {int(bad.sum())} of {a.numel()} elements differ (atol={atol}, rtol={rtol}, "
            f"largest finite diff {worst!r})\n{_describe_mismatches(a, e, bad, max_report)}"
        )


def max_abs_error(actual: torch.Tensor, reference: torch.Tensor) -> float:
    """Largest ``|actual - reference|`` over finite entries, computed in float64."""
    a = actual.detach().to(torch.float64).cpu()
    r = reference.detach().to(torch.float64).cpu()
    finite = a.isfinite() & r.isfinite()
    return (a[finite] - r[finite]).abs().max().item() if finite.any() else 0.0


def assert_error_within_factor(
    actual: torch.Tensor, baseline: torch.Tensor, reference: torch.Tensor, *, factor: float = 2.0, name: str = "tensor"
) -> None:
    """flash-attention's rule: our error against a float64 reference is at most ``factor`` times the error
    of a plain-PyTorch computation in the same low precision (``baseline``), plus float32 rounding slack."""
    ours = max_abs_error(actual, reference)
    theirs = max_abs_error(baseline, reference)
    slack = 1e-6 * max(1.0, reference.detach().abs().max().item())
    if ours > factor * theirs + slack:
        raise AssertionError(
            f"{name}: error {ours:.3e} against float64 exceeds {factor} x PyTorch's own error {theirs:.3e}"
        )
