"""Multi-head DPO loss from hidden states, forward+backward, float32: moafast's routed fused head (gradients
in the forward, 3 GEMMs; and its 4-GEMM recompute path) against the MAH-DPO reference style (all K heads' full logits), Liger's LigerFusedLinearDPOLoss (K=1, when
installed) and the bare GEMMs the computation needs (3: logits, d_hidden, d_weight)."""

from __future__ import annotations

from typing import Any

from bench.harness import Case, Variant


def _inputs(params: dict[str, Any], device: str):
    import torch

    g = torch.Generator().manual_seed(0)
    pairs, length, width, vocab, heads = (params[k] for k in ("pairs", "T", "H", "V", "K"))
    hidden = torch.randn(2 * pairs, length, width, generator=g).to(device).requires_grad_()
    weight = (torch.randn(heads, vocab, width, generator=g) / width**0.5).to(device).requires_grad_()
    labels = torch.randint(0, vocab, (2 * pairs, length), generator=g).to(device)
    head_index = (torch.arange(pairs) % heads).to(device)
    zeros = torch.zeros(pairs, device=device)
    return hidden, weight, labels, head_index, zeros


def _moafast(params, device, grad_in_forward=True):
    from moafast.losses import multi_head_dpo_loss

    hidden, weight, labels, head_index, zeros = _inputs(params, device)

    def run() -> None:
        multi_head_dpo_loss(hidden, weight, labels, head_index, zeros, zeros, beta=0.1,
                            grad_in_forward=grad_in_forward).loss.backward()
        hidden.grad = weight.grad = None

    return run


def _moafast_recompute(params, device):
    return _moafast(params, device, grad_in_forward=False)


def _naive(params, device):
    import torch
    import torch.nn.functional as F

    hidden, weight, labels, head_index, zeros = _inputs(params, device)
    pairs, heads = params["pairs"], params["K"]

    def run() -> None:
        logits = torch.stack([hidden @ weight[k].t() for k in range(heads)])  # [K, 2B, T, V]
        routed = logits[torch.cat([head_index, head_index]), torch.arange(2 * pairs)]
        logps = routed.log_softmax(-1).gather(-1, labels[..., None]).squeeze(-1).sum(1)
        losses = -F.logsigmoid(0.1 * (logps[:pairs] - logps[pairs:]))
        head_losses = [losses[head_index == k].mean() for k in range(heads) if bool((head_index == k).any())]
        torch.stack(head_losses).mean().backward()
        hidden.grad = weight.grad = None

    return run


def _trl(params, device):
    """TRL's DPOTrainer style, routed by hand: each pair's head only, full [T, V] logits per sequence,
    ``selective_log_softmax``, masked sum, sigmoid loss, per-head means."""
    import torch
    import torch.nn.functional as F
    from trl.trainer.utils import selective_log_softmax

    hidden, weight, labels, head_index, _ = _inputs(params, device)
    pairs, heads = params["pairs"], params["K"]
    sequence_heads = torch.cat([head_index, head_index])
    present = [k for k in range(heads) if bool((head_index == k).any())]

    def run() -> None:
        logps = torch.zeros(2 * pairs, device=hidden.device)
        for k in present:
            rows = (sequence_heads == k).nonzero().squeeze(1)
            logits = hidden[rows] @ weight[k].t()
            logps = logps.index_add(0, rows, selective_log_softmax(logits, labels[rows]).sum(1))
        losses = -F.logsigmoid(0.1 * (logps[:pairs] - logps[pairs:]))
        torch.stack([losses[head_index == k].mean() for k in present]).mean().backward()
        hidden.grad = weight.grad = None

    return run


def _liger(params, device):
    from liger_kernel.chunked_loss import LigerFusedLinearDPOLoss

    hidden, weight, labels, _, _ = _inputs(params, device)
    loss_fn = LigerFusedLinearDPOLoss(beta=0.1, use_ref_model=False, compiled=False)
    w = weight[0].detach().requires_grad_()

    def run() -> None:
        loss_fn(w, hidden, labels)[0].backward()
        hidden.grad = w.grad = None

    return run


def _gemm_floor(params, device):
    import torch

    hidden, weight, _, _, _ = _inputs(params, device)
    x = hidden.detach().reshape(-1, params["H"])
    w = weight.detach()[0]

    def run() -> None:
        z = x @ w.t()
        _ = z @ w
        _ = z.t() @ x

    return run


def cases(quick: bool, device: str) -> list[Case]:
    if quick:
        shape = {"pairs": 2, "T": 16, "H": 32, "V": 100}
    elif device == "cuda":  # the GPU shape of the issue: 8 pairs, T=1024, H=4096, V=128256
        shape = {"pairs": 8, "T": 1024, "H": 4096, "V": 128256}
    else:
        shape = {"pairs": 4, "T": 512, "H": 1024, "V": 32000}
    out = []
    for heads in (1, 3):
        params = {**shape, "K": heads}
        tokens = 2 * params["pairs"] * params["T"]
        variants = [Variant("moafast routed", _moafast, ours=True),
                    Variant("moafast routed, 4-GEMM recompute", _moafast_recompute),
                    Variant("naive all-heads logits", _naive),
                    Variant("TRL selective_log_softmax, routed", _trl, requires=("trl",)),
                    Variant("bare 3 GEMMs (floor)", _gemm_floor, floor=True)]
        if heads == 1:
            variants.insert(4, Variant("liger LigerFusedLinearDPOLoss", _liger, requires=("liger_kernel",)))
        gradients = 4 * (tokens * params["H"] + heads * params["V"] * params["H"])  # d_hidden, d_weight (float32)
        out.append(Case(f"K{heads}", params, tuple(variants), flops=3 * 2 * tokens * params["H"] * params["V"],
                        output_bytes=gradients,
                        warmup=0, repeats=1 if quick else 3))
    return out
