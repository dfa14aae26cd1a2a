"""MultiHeadDPOLoss against the MAH-DPO reference-code style: all heads' full logits, one head per pair."""

from __future__ import annotations

import torch

from moafast.losses import MultiHeadDPOLoss, dpo_loss
from moafast.testing import assert_close

B, T, H, V, K = 5, 9, 16, 37, 3


def reference_mah_dpo(hidden, weight, labels, head_index, ref_c, ref_r, beta):
    """Stack [K, 2B, T, V] logits, take each pair's head, log_softmax, gather, masked sum; mean per head."""
    logits = torch.einsum("sth,kvh->kstv", hidden, weight)
    heads = torch.cat([head_index, head_index])
    chosen_logits = logits[heads, torch.arange(2 * B)]
    mask = labels != -100
    token_logps = chosen_logits.log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    logps = (token_logps * mask).sum(1)
    losses = dpo_loss(logps[:B], logps[B:], ref_c, ref_r, beta=beta).losses
    head_losses = [losses[head_index == k].mean() for k in range(K) if (head_index == k).any()]
    return torch.stack(head_losses).mean()


def test_loss_and_gradients_match_the_reference() -> None:
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(2 * B, T, H, generator=g, dtype=torch.float64)
    weight = torch.randn(K, V, H, generator=g, dtype=torch.float64) / 4
    labels = torch.randint(0, V, (2 * B, T), generator=g)
    labels[:, :3] = -100  # prompt
    labels[1, 7:] = -100  # padding
    head_index = torch.tensor([0, 2, 2, 0, 2])  # head 1 absent: it must not count in the mean
    ref_c, ref_r = torch.randn(B, generator=g, dtype=torch.float64), torch.randn(B, generator=g, dtype=torch.float64)

    ours_h, ours_w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    out = MultiHeadDPOLoss(beta=0.3, chunk_size=7)(ours_h, ours_w, labels, head_index, ref_c, ref_r)
    out.loss.backward()
    theirs_h, theirs_w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    expected = reference_mah_dpo(theirs_h, theirs_w, labels, head_index, ref_c, ref_r, beta=0.3)
    expected.backward()

    assert_close(out.loss, expected, name="loss")
    assert_close(ours_h.grad, theirs_h.grad, name="d_hidden")
    assert_close(ours_w.grad, theirs_w.grad, name="d_weight")
    assert (ours_w.grad[1] == 0).all(), "an absent head gets no gradient"
    assert out.metrics["pairs"].tolist() == [2, 0, 3]
    margins = 0.3 * ((out.chosen_logps - ref_c) - (out.rejected_logps - ref_r))
    assert_close(out.metrics["reward_margin"][2], margins[head_index == 2].mean(), name="head 2 margin")


def test_reference_from_reference_weights_equals_precomputed_logps() -> None:
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(2 * B, T, H, generator=g, dtype=torch.float64)
    ref_hidden = torch.randn(2 * B, T, H, generator=g, dtype=torch.float64)
    weight = torch.randn(K, V, H, generator=g, dtype=torch.float64) / 4
    ref_weight = torch.randn(V, H, generator=g, dtype=torch.float64) / 4
    labels = torch.randint(0, V, (2 * B, T), generator=g)
    labels[:, :2] = -100
    head_index = torch.tensor([0, 1, 2, 0, 1])
    ref_logps = (ref_hidden @ ref_weight.t()).log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    ref_logps = (ref_logps * (labels != -100)).sum(1)
    loss = MultiHeadDPOLoss(beta=0.2)
    from_weights = loss(hidden, weight, labels, head_index, ref_weight=ref_weight, ref_hidden=ref_hidden)
    precomputed = loss(hidden, weight, labels, head_index, ref_logps[:B], ref_logps[B:])
    assert_close(from_weights.loss, precomputed.loss, name="loss")
