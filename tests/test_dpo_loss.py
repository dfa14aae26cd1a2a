"""dpo_loss against per-pair scalar formulas written independently with Python's math module (float64)."""

from __future__ import annotations

import math

import pytest
import torch

from moafast.losses import DPO_LOSS_TYPES, dpo_loss


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def sigmoid(x: float) -> float:
    return math.exp(log_sigmoid(x))


BETA, EPS, TAU = 0.7, 0.2, 0.05


def scalar_losses(loss_type: str, c, r, rc, rr, lc, lr) -> list[float]:
    """Each pair's loss, the paper formula spelled out per scalar."""
    out = []
    n = len(c)
    for i in range(n):
        xc, xr = c[i] - rc[i], r[i] - rr[i]
        d = xc - xr
        if loss_type == "sigmoid":
            out.append(-log_sigmoid(BETA * d))
        elif loss_type == "hinge":
            out.append(max(0.0, 1 - BETA * d))
        elif loss_type == "ipo":
            out.append((xc / lc[i] - xr / lr[i] - 1 / (2 * BETA)) ** 2)
        elif loss_type == "sigmoid_norm":
            out.append(-log_sigmoid(BETA * (xc / lc[i] - xr / lr[i])))
        elif loss_type == "exo_pair":
            q = sigmoid(BETA * d)  # policy's preference probability vs the smoothed label (1 - eps, eps)
            out.append(q * math.log(q / (1 - EPS)) + (1 - q) * math.log((1 - q) / EPS))
        elif loss_type == "nca_pair":
            out.append(-log_sigmoid(BETA * xc) - 0.5 * log_sigmoid(-BETA * xc) - 0.5 * log_sigmoid(-BETA * xr))
        elif loss_type == "robust":
            out.append(((1 - EPS) * -log_sigmoid(BETA * d) - EPS * -log_sigmoid(-BETA * d)) / (1 - 2 * EPS))
        elif loss_type == "bco_pair":
            out.append(-log_sigmoid(BETA * xc) - log_sigmoid(-BETA * xr))
        elif loss_type == "sppo_hard":
            out.append((xc - 1 / (2 * BETA)) ** 2 + (xr + 1 / (2 * BETA)) ** 2)
        elif loss_type == "apo_zero":
            out.append(1 - sigmoid(BETA * xc) + sigmoid(BETA * xr))
        elif loss_type == "apo_down":
            out.append(sigmoid(BETA * xc) + 1 - sigmoid(BETA * (xc - xr)))
        elif loss_type == "discopop":
            m = sigmoid(BETA * d / TAU)
            out.append((1 - m) * -log_sigmoid(BETA * d) + m * math.exp(-BETA * d))
        elif loss_type == "sft":
            out.append(-sum(c) / sum(lc))
    if loss_type in ("aot", "aot_unpaired"):
        if loss_type == "aot":
            a = sorted(c[i] - r[i] for i in range(n))
            b = sorted(rc[i] - rr[i] for i in range(n))
        else:
            a = sorted(c[i] - rc[i] for i in range(n))
            b = sorted(r[i] - rr[i] for i in range(n))
        out = [-(1 - EPS) * log_sigmoid(BETA * (x - y)) - EPS * log_sigmoid(-BETA * (x - y)) for x, y in zip(a, b)]
    return out


def make_batch(n: int = 7):
    g = torch.Generator().manual_seed(1)
    c = -20 + 5 * torch.randn(n, generator=g, dtype=torch.float64)
    r = -25 + 5 * torch.randn(n, generator=g, dtype=torch.float64)
    rc = -21 + 5 * torch.randn(n, generator=g, dtype=torch.float64)
    rr = -24 + 5 * torch.randn(n, generator=g, dtype=torch.float64)
    lc = torch.randint(1, 40, (n,), generator=g).double()
    lr = torch.randint(1, 40, (n,), generator=g).double()
    return c, r, rc, rr, lc, lr


@pytest.mark.parametrize("loss_type", DPO_LOSS_TYPES)
def test_each_loss_type_matches_its_formula(loss_type: str) -> None:
    c, r, rc, rr, lc, lr = make_batch()
    out = dpo_loss(c, r, rc, rr, loss_type=loss_type, beta=BETA, label_smoothing=EPS, discopop_tau=TAU,
                   chosen_lengths=lc, rejected_lengths=lr)
    expected = scalar_losses(loss_type, *(t.tolist() for t in (c, r, rc, rr, lc, lr)))
    torch.testing.assert_close(out.losses, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.loss, torch.tensor(sum(expected) / len(expected), dtype=torch.float64))
    torch.testing.assert_close(out.chosen_rewards, BETA * (c - rc))
    torch.testing.assert_close(out.rejected_rewards, BETA * (r - rr))


def test_weighted_combination_and_reference_free() -> None:
    c, r, rc, rr, lc, lr = make_batch()
    combined = dpo_loss(c, r, rc, rr, loss_type=["sigmoid", "bco_pair", "sft"], loss_weights=[0.8, 0.2, 1.0],
                        chosen_lengths=lc)
    parts = [dpo_loss(c, r, rc, rr, loss_type=t, chosen_lengths=lc).loss for t in ("sigmoid", "bco_pair", "sft")]
    torch.testing.assert_close(combined.loss, 0.8 * parts[0] + 0.2 * parts[1] + parts[2])
    free = dpo_loss(c, r, loss_type="sigmoid")
    torch.testing.assert_close(free.loss, dpo_loss(c, r, torch.zeros_like(c), torch.zeros_like(r)).loss)


@pytest.mark.parametrize("divergence", ["forward_kl", "js_divergence", "alpha_divergence"])
def test_f_divergence_scores(divergence: str) -> None:
    c, r, rc, rr, _, _ = make_batch()
    alpha = 0.5
    out = dpo_loss(c, r, rc, rr, beta=BETA, f_divergence_type=divergence, f_alpha_divergence_coef=alpha)
    expected = []
    for i in range(len(c)):
        ratios = [float(c[i] - rc[i]), float(r[i] - rr[i])]
        if divergence == "forward_kl":  # f'(t) = 1 - 1/t at t = exp(ratio)
            s = [1 - math.exp(-x) for x in ratios]
        elif divergence == "js_divergence":  # f'(t) = log(2t / (1 + t))
            s = [math.log(2 * math.exp(x) / (1 + math.exp(x))) for x in ratios]
        else:  # f'(t) = (t^(alpha-1) - 1) / (alpha - 1)
            s = [(math.exp(x) ** (alpha - 1) - 1) / (alpha - 1) for x in ratios]
        expected.append(-log_sigmoid(BETA * (s[0] - s[1])))
    torch.testing.assert_close(out.losses, torch.tensor(expected, dtype=torch.float64))


def test_gradients_flow_to_the_policy_only() -> None:
    c, r, rc, rr, _, _ = make_batch()
    c.requires_grad_()
    r.requires_grad_()
    dpo_loss(c, r, rc, rr, beta=BETA).loss.backward()
    d = BETA * ((c - rc) - (r - rr)).detach()
    torch.testing.assert_close(c.grad, -BETA * torch.sigmoid(-d) / len(c))
    torch.testing.assert_close(r.grad, BETA * torch.sigmoid(-d) / len(c))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss_type": "dpo"}, "loss_type: unknown"),
        ({"loss_type": ["sigmoid", "hinge"], "loss_weights": [1.0]}, "loss_weights: expected 2"),
        ({"beta": 0.0}, "beta: expected > 0"),
        ({"loss_type": "ipo"}, "chosen_lengths: loss_type='ipo' needs"),
        ({"loss_type": "robust", "label_smoothing": 0.5}, "robust needs 0 <= label_smoothing < 0.5"),
        ({"loss_type": "exo_pair"}, "exo_pair needs 0 < label_smoothing"),
        ({"loss_type": "bco_pair", "f_divergence_type": "js_divergence"}, "use f_divergence_type='reverse_kl'"),
        ({"f_divergence_type": "kl"}, "f_divergence_type: expected one of"),
    ],
)
def test_bad_arguments_raise_value_errors_that_name_the_fix(kwargs, message) -> None:
    c, r, rc, rr, _, _ = make_batch()
    with pytest.raises(ValueError, match=message):
        dpo_loss(c, r, rc, rr, **kwargs)


def test_shape_mismatch_names_the_argument() -> None:
    c, r, rc, rr, _, _ = make_batch()
    with pytest.raises(ValueError, match=r"ref_rejected_logps: expected shape \[B\] = \[7\]"):
        dpo_loss(c, r, rc, rr[:3])
