"""Closed-form gradients of the per-pair DPO losses with respect to the policy's sequence log-probs.

They let the fused DPO path scale each chunk's logit gradient as soon as the chunk's pairs are scored
(3 GEMMs instead of 4). With ``u = logp_c - ref_c``, ``v = logp_r - ref_r``, scores ``s = f(u)``
(the f-divergence) and ``δ = f(u) - f(v)``, a loss of ``δ`` alone has ``∂ℓ/∂u = ℓ'(δ) f'(u)`` and
``∂ℓ/∂v = -ℓ'(δ) f'(v)``; the length-normalised losses divide by the lengths; the others are written in
``u, v`` directly. Every formula is checked against autograd through :func:`moafast.losses.dpo_loss`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from moafast.losses.dpo import _scores

PAIR_LOCAL_LOSS_TYPES = frozenset({
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "apo_zero", "apo_down",
    "discopop", "sft", "sigmoid_norm",
})
"""Loss types whose gradient for a pair needs only that pair (``aot``/``aot_unpaired`` sort the batch)."""


def _score_derivative(logratios: torch.Tensor, divergence: str, alpha: float) -> torch.Tensor:
    if divergence == "reverse_kl" or (divergence == "alpha_divergence" and abs(alpha - 1.0) < 1e-6):
        return torch.ones_like(logratios)
    if divergence == "forward_kl":
        return torch.exp(-logratios)
    if divergence == "js_divergence":
        return torch.sigmoid(-logratios)
    exponent = (alpha - 1.0) * logratios.to(torch.promote_types(logratios.dtype, torch.float32))
    return torch.where(exponent <= 80.0, torch.exp(exponent.clamp(max=80.0)), 0.0).to(logratios.dtype)


def _sigmoid_slope(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x) * torch.sigmoid(-x)


def _delta_loss_slope(name: str, delta: torch.Tensor, beta: float, eps: float, tau: float) -> torch.Tensor:
    """``dℓ/dδ`` of the losses that depend on the score difference δ alone."""
    w = beta * delta
    if name == "sigmoid":
        return -beta * torch.sigmoid(-w)
    if name == "hinge":
        return -beta * (1 - w > 0).to(delta.dtype)
    if name == "robust":
        return beta * (-(1 - eps) * torch.sigmoid(-w) - eps * torch.sigmoid(w)) / (1 - 2 * eps)
    if name == "exo_pair":
        return beta * _sigmoid_slope(w) * (w - math.log((1 - eps) / eps))
    # discopop
    mix = torch.sigmoid(w / tau)
    mix_slope = mix * (1 - mix) / tau
    log_sig = torch.nn.functional.logsigmoid(w)
    return beta * (-torch.sigmoid(-w) * (1 - mix) + log_sig * mix_slope - torch.exp(-w) * mix
                   + torch.exp(-w) * mix_slope)


def _reference_kl_slopes(name: str, u: torch.Tensor, v: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(∂ℓ/∂u, ∂ℓ/∂v)`` of the losses written in the log-ratios directly (reverse KL only)."""
    if name == "nca_pair":
        return (-beta * torch.sigmoid(-beta * u) + 0.5 * beta * torch.sigmoid(beta * u),
                0.5 * beta * torch.sigmoid(beta * v))
    if name == "bco_pair":
        return -beta * torch.sigmoid(-beta * u), beta * torch.sigmoid(beta * v)
    if name == "sppo_hard":
        return 2 * (u - 0.5 / beta), 2 * (v + 0.5 / beta)
    if name == "apo_zero":
        return -beta * _sigmoid_slope(beta * u), beta * _sigmoid_slope(beta * v)
    cross = beta * _sigmoid_slope(beta * (u - v))  # apo_down
    return beta * _sigmoid_slope(beta * u) - cross, cross


def pair_loss_gradients(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor | None,
    ref_rejected_logps: torch.Tensor | None,
    pair_weights: torch.Tensor,
    *,
    loss_type: str | Sequence[str] = "sigmoid",
    loss_weights: Sequence[float] | None = None,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    f_divergence_type: str = "reverse_kl",
    f_alpha_divergence_coef: float = 1.0,
    discopop_tau: float = 0.05,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
    sft_total_length: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(∂L/∂chosen_logps, ∂L/∂rejected_logps)``, each ``[B]``, of ``L = Σ_i c_i ℓ_i`` where
    ``ℓ_i = Σ_j w_j loss_j(pair i)`` has the definitions and arguments of :func:`moafast.losses.dpo_loss`
    and ``c = pair_weights`` (``[B]``; over the whole batch they sum to 1, e.g. ``1/B`` for the plain mean).

    The pairs may be a chunk of the batch: each pair's row needs only that pair, except ``sft`` (the batch's
    mean chosen NLL, the same for every pair), whose row is ``-1 / Σ len_c`` with the whole batch's
    ``Σ len_c`` in ``sft_total_length``.
    """
    loss_types = [loss_type] if isinstance(loss_type, str) else list(loss_type)
    weights = [1.0] * len(loss_types) if loss_weights is None else list(loss_weights)
    unsupported = sorted(set(loss_types) - PAIR_LOCAL_LOSS_TYPES)
    if unsupported:
        raise ValueError(f"loss_type: {unsupported} couple the pairs of a batch (they sort it), so their gradient "
                         f"is not known per chunk of pairs; use grad_in_forward=False")
    u = chosen_logps - (0.0 if ref_chosen_logps is None else ref_chosen_logps)
    v = rejected_logps - (0.0 if ref_rejected_logps is None else ref_rejected_logps)
    divergence, alpha, eps = f_divergence_type, f_alpha_divergence_coef, label_smoothing
    du_score, dv_score = _score_derivative(u, divergence, alpha), _score_derivative(v, divergence, alpha)
    delta = _scores(u, divergence, alpha) - _scores(v, divergence, alpha)
    grad_c, grad_r = torch.zeros_like(u), torch.zeros_like(v)
    for name, weight in zip(loss_types, weights):
        if name in ("sigmoid", "hinge", "robust", "exo_pair", "discopop"):
            slope = _delta_loss_slope(name, delta, beta, eps, discopop_tau)
            gc, gr = pair_weights * slope * du_score, -pair_weights * slope * dv_score
        elif name in ("ipo", "sigmoid_norm"):
            len_c, len_r = chosen_lengths.clamp(min=1).to(u.dtype), rejected_lengths.clamp(min=1).to(u.dtype)
            normalised = _scores(u, divergence, alpha) / len_c - _scores(v, divergence, alpha) / len_r
            slope = (2 * (normalised - 1 / (2 * beta)) if name == "ipo"
                     else -beta * torch.sigmoid(-beta * normalised))
            gc, gr = pair_weights * slope * du_score / len_c, -pair_weights * slope * dv_score / len_r
        elif name == "sft":
            gc = (-1.0 / sft_total_length.clamp(min=1).to(u.dtype)).expand_as(u)
            gr = torch.zeros_like(v)
        else:
            gc, gr = _reference_kl_slopes(name, u, v, beta)
            gc, gr = pair_weights * gc, pair_weights * gr
        grad_c, grad_r = grad_c + weight * gc, grad_r + weight * gr
    return grad_c, grad_r
