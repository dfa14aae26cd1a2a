"""The closed-form per-pair DPO gradients against autograd through `dpo_loss`, for every loss type."""

from __future__ import annotations

import pytest
import torch

from moafast.losses import dpo_loss
from moafast.losses.pair_gradients import PAIR_LOCAL_LOSS_TYPES, pair_loss_gradients
from moafast.testing import assert_close

B = 11
F_DIVERGENCE_CASES = [("reverse_kl", 1.0), ("forward_kl", 1.0), ("js_divergence", 1.0), ("alpha_divergence", 0.5),
                      ("alpha_divergence", 1.0)]


def _batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    logps = [-torch.rand(B, generator=g, dtype=torch.float64) * 30 for _ in range(4)]
    lengths = [torch.randint(1, 40, (B,), generator=g) for _ in range(2)]
    pair_weights = torch.rand(B, generator=g, dtype=torch.float64)
    return logps, lengths, pair_weights / pair_weights.sum()


def _autograd(logps, lengths, pair_weights, **kwargs):
    chosen, rejected = (x.clone().requires_grad_() for x in logps[:2])
    out = dpo_loss(chosen, rejected, logps[2], logps[3], chosen_lengths=lengths[0], rejected_lengths=lengths[1],
                   **kwargs)
    (pair_weights * out.losses).sum().backward()
    return tuple(torch.zeros(B, dtype=torch.float64) if x.grad is None else x.grad for x in (chosen, rejected))


def _closed_form(logps, lengths, pair_weights, **kwargs):
    return pair_loss_gradients(*logps, pair_weights, chosen_lengths=lengths[0], rejected_lengths=lengths[1],
                               sft_total_length=lengths[0].sum(), **kwargs)


@pytest.mark.parametrize("loss_type", sorted(PAIR_LOCAL_LOSS_TYPES))
def test_every_pair_local_loss_matches_autograd(loss_type: str) -> None:
    logps, lengths, pair_weights = _batch(0)
    kwargs = {"loss_type": loss_type, "beta": 0.3,
              "label_smoothing": 0.1 if loss_type in ("robust", "exo_pair") else 0.0}
    expected = _autograd(logps, lengths, pair_weights, **kwargs)
    got = _closed_form(logps, lengths, pair_weights, **kwargs)
    assert_close(got[0], expected[0], name=f"{loss_type} d/d chosen")
    assert_close(got[1], expected[1], name=f"{loss_type} d/d rejected")


@pytest.mark.parametrize("divergence,alpha", F_DIVERGENCE_CASES)
@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge", "ipo", "robust", "exo_pair", "discopop", "sigmoid_norm"])
def test_f_divergences_chain_through_the_scores(loss_type: str, divergence: str, alpha: float) -> None:
    logps, lengths, pair_weights = _batch(1)
    logps[0] = logps[2] + torch.linspace(-2, 2, B, dtype=torch.float64)  # log-ratios where exp() stays finite
    kwargs = {"loss_type": loss_type, "beta": 0.7, "f_divergence_type": divergence, "f_alpha_divergence_coef": alpha,
              "label_smoothing": 0.2 if loss_type in ("robust", "exo_pair") else 0.0}
    expected = _autograd(logps, lengths, pair_weights, **kwargs)
    got = _closed_form(logps, lengths, pair_weights, **kwargs)
    assert_close(got[0], expected[0], name="d/d chosen")
    assert_close(got[1], expected[1], name="d/d rejected")


def test_weighted_combination_with_sft() -> None:
    logps, lengths, pair_weights = _batch(2)
    kwargs = {"loss_type": ["sigmoid", "sft", "bco_pair"], "loss_weights": [1.0, 0.3, 0.5], "beta": 0.2}
    expected = _autograd(logps, lengths, pair_weights, **kwargs)
    got = _closed_form(logps, lengths, pair_weights, **kwargs)
    assert_close(got[0], expected[0], name="d/d chosen")
    assert_close(got[1], expected[1], name="d/d rejected")


def test_batch_coupled_losses_are_refused_with_the_fix() -> None:
    logps, lengths, pair_weights = _batch(3)
    with pytest.raises(ValueError, match="grad_in_forward=False"):
        _closed_form(logps, lengths, pair_weights, loss_type="aot")
