"""logprobs_from_logits [N, V] -> per-token log-probs, forward and forward+backward, against
`torch.log_softmax(...).gather(...)` and TRL's `selective_log_softmax`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.harness import Case, Variant

ITEMSIZE = {"float32": 4, "bfloat16": 2}


def _inputs(params: dict[str, Any], device: str):
    import torch

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(params["N"], params["V"], generator=generator).to(getattr(torch, params["dtype"]))
    targets = torch.randint(0, params["V"], (params["N"],), generator=generator)
    return logits.to(device), targets.to(device)


def _variant(load: Callable[[], Callable]) -> Callable[[dict[str, Any], str], Any]:
    """Wraps `load() -> compute(logits, targets) -> logp[N]` into a timed callable plus an error check;
    the import happens in setup, outside the timed first call."""

    def setup(params: dict[str, Any], device: str):
        import torch

        compute = load()
        logits, targets = _inputs(params, device)
        backward = params["mode"] == "fwd+bwd"
        if backward:
            logits.requires_grad_()
            upstream = torch.randn(params["N"], device=device)

        def run() -> None:
            logp = compute(logits, targets)
            if backward:
                logp.backward(upstream.to(logp.dtype))
                logits.grad = None

        def max_abs_error() -> float:
            with torch.no_grad():
                exact = logits.double().log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)
                return (compute(logits.detach(), targets).double() - exact).abs().max().item()

        return run, max_abs_error

    return setup


def _moafast() -> Callable:
    from moafast.ops import logprobs_from_logits

    return lambda logits, targets: logprobs_from_logits(logits, targets)[0]


def _torch() -> Callable:
    import torch

    return lambda logits, targets: torch.log_softmax(logits, -1, dtype=torch.float32).gather(
        -1, targets[:, None]
    ).squeeze(-1)


def _trl() -> Callable:
    from trl.trainer.utils import selective_log_softmax

    return selective_log_softmax


VARIANTS = (
    Variant("moafast", _variant(_moafast), ours=True),
    # The peers take 0.2-10 s per call: a warm-up and two timed calls each, so that three processes fit.
    Variant("torch log_softmax+gather", _variant(_torch), max_calls=2),
    Variant("trl selective_log_softmax", _variant(_trl), requires=("trl",), max_calls=2),
)


def cases(quick: bool, device: str) -> list[Case]:
    rows, vocabs = (64, (1000,)) if quick else (4096, (32000, 128256))
    out = []
    for vocab in vocabs:
        for dtype in ("float32", "bfloat16"):
            for mode in ("fwd", "fwd+bwd"):
                data_bytes = rows * vocab * ITEMSIZE[dtype]
                out.append(Case(
                    name=f"V{vocab}_{dtype}_{mode.replace('+', '')}",
                    params={"N": rows, "V": vocab, "dtype": dtype, "mode": mode},
                    variants=VARIANTS,
                    # forward reads the logits once; backward reads them again and writes grad_logits
                    bytes_moved=data_bytes * (3 if mode == "fwd+bwd" else 1),
                    rounds=1 if quick else 3,  # every variant in three processes (harness.Case.rounds)
                ))
    return out
