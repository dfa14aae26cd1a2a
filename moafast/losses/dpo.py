"""The DPO loss family on per-sequence log-probabilities, with TRL DPOTrainer's definitions.

With log-ratios ``r_c = logp_c - ref_logp_c`` and ``r_r = logp_r - ref_logp_r``, scores ``s = f'(exp(r))``
(``s = r`` for the default reverse KL) and ``d = s_c - s_r``, per pair:

* sigmoid: ``-log σ(β d)``;  hinge: ``relu(1 - β d)``;  robust: ``(-(1-ε) log σ(β d) + ε log σ(-β d)) / (1 - 2ε)``
* ipo: ``(s_c/len_c - s_r/len_r - 1/(2β))²``;  sigmoid_norm: ``-log σ(β (s_c/len_c - s_r/len_r))``
* exo_pair: ``KL(softmax(β d) || (1-ε, ε))``;  nca_pair: ``-log σ(β r_c) - ½ log σ(-β r_c) - ½ log σ(-β r_r)``
* bco_pair: ``-log σ(β r_c) - log σ(-β r_r)``;  sppo_hard: ``(r_c - 1/(2β))² + (r_r + 1/(2β))²``
* aot / aot_unpaired: sigmoid with label smoothing on the batch-sorted log-ratio differences
* apo_zero: ``1 - σ(β r_c) + σ(β r_r)``;  apo_down: ``σ(β r_c) + 1 - σ(β (r_c - r_r))``
* discopop: ``(1 - σ(β d / τ)) (-log σ(β d)) + σ(β d / τ) exp(-β d)``
* sft: ``-Σ logp_c / Σ len_c`` (the chosen tokens' mean NLL, the same for every pair)

Several loss types combine as ``Σ_i w_i · mean_pairs(loss_i)``. A missing reference (``None``) means a
zero reference (reference-free DPO). Shapes: every log-prob tensor is ``[B]``; lengths are ``[B]`` counts of
completion tokens. NaN/inf in the inputs propagate to the losses of the pairs they belong to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

DPO_LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
    "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)
F_DIVERGENCES = ("reverse_kl", "forward_kl", "js_divergence", "alpha_divergence")
_F_DIVERGENCE_LOSSES = {"sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust", "discopop", "sft"}
_NEEDS_LENGTHS = {"ipo": ("chosen_lengths", "rejected_lengths"), "sigmoid_norm": ("chosen_lengths", "rejected_lengths"),
                  "sft": ("chosen_lengths",)}


class DPOLoss(NamedTuple):
    loss: torch.Tensor  # scalar: sum_i w_i * mean(losses_i)
    losses: torch.Tensor  # [B]: sum_i w_i * losses_i per pair (its mean is `loss`, except for aot's sorting)
    chosen_rewards: torch.Tensor  # [B]: beta * (logp_c - ref_logp_c), detached
    rejected_rewards: torch.Tensor  # [B]


def _scores(logratios: torch.Tensor, divergence: str, alpha: float) -> torch.Tensor:
    if divergence == "reverse_kl" or (divergence == "alpha_divergence" and abs(alpha - 1.0) < 1e-6):
        return logratios
    if divergence == "forward_kl":
        return 1 - torch.exp(-logratios)
    if divergence == "js_divergence":
        return math.log(2) + F.logsigmoid(logratios)
    # at least float32 for the exponential (TRL's clamp keeps exp finite once cast back)
    t = torch.clamp((alpha - 1.0) * logratios.to(torch.promote_types(logratios.dtype, torch.float32)), max=80.0)
    return ((torch.exp(t) - 1.0) / (alpha - 1.0)).to(logratios.dtype)


def _smoothed_sigmoid(delta: torch.Tensor, beta: float, epsilon: float) -> torch.Tensor:
    return -F.logsigmoid(beta * delta) * (1 - epsilon) - F.logsigmoid(-beta * delta) * epsilon


def _validate(
    loss_types: Sequence[str], weights: Sequence[float], beta: float, label_smoothing: float, divergence: str,
    tensors: dict[str, torch.Tensor | None],
) -> None:
    unknown = [t for t in loss_types if t not in DPO_LOSS_TYPES]
    if unknown or not loss_types:
        raise ValueError(f"loss_type: unknown {unknown or 'empty list'}; expected any of {', '.join(DPO_LOSS_TYPES)}")
    if len(weights) != len(loss_types):
        raise ValueError(f"loss_weights: expected {len(loss_types)} weights (one per loss type), got {len(weights)}")
    if not beta > 0:
        raise ValueError(f"beta: expected > 0, got {beta}")
    if divergence not in F_DIVERGENCES:
        raise ValueError(f"f_divergence_type: expected one of {', '.join(F_DIVERGENCES)}, got {divergence!r}")
    if divergence != "reverse_kl" and not set(loss_types) <= _F_DIVERGENCE_LOSSES:
        raise ValueError(f"f_divergence_type={divergence!r} supports only {sorted(_F_DIVERGENCE_LOSSES)}; use "
                         f"f_divergence_type='reverse_kl' with {sorted(set(loss_types) - _F_DIVERGENCE_LOSSES)}")
    if "robust" in loss_types and not 0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing: robust needs 0 <= label_smoothing < 0.5, got {label_smoothing}")
    if "exo_pair" in loss_types and not 0 < label_smoothing < 1:
        raise ValueError(f"label_smoothing: exo_pair needs 0 < label_smoothing < 1 (e.g. 1e-3), got {label_smoothing}")
    for loss_type in loss_types:
        for name in _NEEDS_LENGTHS.get(loss_type, ()):
            if tensors[name] is None:
                raise ValueError(f"{name}: loss_type={loss_type!r} needs the number of completion tokens per sequence")
    reference = tensors["chosen_logps"]
    if not isinstance(reference, torch.Tensor) or reference.dim() != 1:
        raise ValueError(f"chosen_logps: expected a 1-D tensor [B], got {getattr(reference, 'shape', type(reference))}")
    for name, tensor in tensors.items():
        if tensor is not None and tuple(tensor.shape) != tuple(reference.shape):
            raise ValueError(f"{name}: expected shape [B] = {list(reference.shape)} like chosen_logps, "
                             f"got {list(tensor.shape)}")


def dpo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor | None = None,
    ref_rejected_logps: torch.Tensor | None = None,
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
) -> DPOLoss:
    """DPO-family loss of a batch of preference pairs (see the module docstring for every formula).

    Args:
        chosen_logps, rejected_logps: ``[B]`` summed completion log-probs under the policy.
        ref_chosen_logps, ref_rejected_logps: ``[B]`` under the reference, or ``None`` for reference-free.
        loss_type: one name from :data:`DPO_LOSS_TYPES` or a list of them, combined with ``loss_weights``
            (default: all 1).
        beta: inverse temperature (τ for ipo). label_smoothing: ε of robust, exo_pair, aot, aot_unpaired.
        chosen_lengths, rejected_lengths: ``[B]`` completion token counts, needed by ipo, sigmoid_norm, sft.
    """
    loss_types = [loss_type] if isinstance(loss_type, str) else list(loss_type)
    weights = [1.0] * len(loss_types) if loss_weights is None else list(loss_weights)
    tensors = {"chosen_logps": chosen_logps, "rejected_logps": rejected_logps, "ref_chosen_logps": ref_chosen_logps,
               "ref_rejected_logps": ref_rejected_logps, "chosen_lengths": chosen_lengths,
               "rejected_lengths": rejected_lengths}
    _validate(loss_types, weights, beta, label_smoothing, f_divergence_type, tensors)
    ref_chosen = torch.zeros_like(chosen_logps) if ref_chosen_logps is None else ref_chosen_logps
    ref_rejected = torch.zeros_like(rejected_logps) if ref_rejected_logps is None else ref_rejected_logps
    chosen_logratios = chosen_logps - ref_chosen
    rejected_logratios = rejected_logps - ref_rejected
    chosen_scores = _scores(chosen_logratios, f_divergence_type, f_alpha_divergence_coef)
    rejected_scores = _scores(rejected_logratios, f_divergence_type, f_alpha_divergence_coef)
    delta = chosen_scores - rejected_scores
    eps = label_smoothing

    def length_normalised_delta() -> torch.Tensor:
        return chosen_scores / chosen_lengths.clamp(min=1) - rejected_scores / rejected_lengths.clamp(min=1)

    total = torch.zeros_like(chosen_logps)
    for name, weight in zip(loss_types, weights):
        if name == "sigmoid":
            per_pair = -F.logsigmoid(beta * delta)
        elif name == "hinge":
            per_pair = torch.relu(1 - beta * delta)
        elif name == "ipo":
            per_pair = (length_normalised_delta() - 1 / (2 * beta)) ** 2
        elif name == "sigmoid_norm":
            per_pair = -F.logsigmoid(beta * length_normalised_delta())
        elif name == "exo_pair":
            win, lose = beta * delta, -beta * delta
            per_pair = (torch.sigmoid(win) * (F.logsigmoid(win) - math.log1p(-eps))
                        + torch.sigmoid(lose) * (F.logsigmoid(lose) - math.log(eps)))
        elif name == "nca_pair":
            per_pair = (-F.logsigmoid(beta * chosen_logratios) - 0.5 * F.logsigmoid(-beta * chosen_logratios)
                        - 0.5 * F.logsigmoid(-beta * rejected_logratios))
        elif name == "robust":
            per_pair = (-(1 - eps) * F.logsigmoid(beta * delta) + eps * F.logsigmoid(-beta * delta)) / (1 - 2 * eps)
        elif name == "bco_pair":
            per_pair = -F.logsigmoid(beta * chosen_logratios) - F.logsigmoid(-beta * rejected_logratios)
        elif name == "sppo_hard":
            per_pair = (chosen_logratios - 0.5 / beta) ** 2 + (rejected_logratios + 0.5 / beta) ** 2
        elif name == "aot":
            sorted_policy = torch.sort(chosen_logps - rejected_logps).values
            sorted_reference = torch.sort(ref_chosen - ref_rejected).values
            per_pair = _smoothed_sigmoid(sorted_policy - sorted_reference, beta, eps)
        elif name == "aot_unpaired":
            per_pair = _smoothed_sigmoid(torch.sort(chosen_logratios).values - torch.sort(rejected_logratios).values,
                                         beta, eps)
        elif name == "apo_zero":
            per_pair = 1 - torch.sigmoid(beta * chosen_logratios) + torch.sigmoid(beta * rejected_logratios)
        elif name == "apo_down":
            per_pair = torch.sigmoid(beta * chosen_logratios) + 1 - torch.sigmoid(beta * (chosen_logratios
                                                                                       - rejected_logratios))
        elif name == "discopop":
            logits = beta * delta
            mix = torch.sigmoid(logits / discopop_tau)
            per_pair = -F.logsigmoid(logits) * (1 - mix) + torch.exp(-logits) * mix
        else:  # sft
            per_pair = (-chosen_logps.sum() / chosen_lengths.sum().clamp(min=1)).expand_as(chosen_logps)
        total = total + weight * per_pair
    return DPOLoss(total.mean(), total, (beta * chosen_logratios).detach(), (beta * rejected_logratios).detach())
