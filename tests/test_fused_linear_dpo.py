"""The 3-GEMM fused DPO loss (gradients in the forward) against the materialised-logits MAH-DPO reference and
against the 4-GEMM recompute path: loss, d_hidden, d_weight, d_bias, for the loss family, dtypes and odd shapes."""

from __future__ import annotations

import pytest
import torch

from moafast.losses import dpo_loss, fused_linear_dpo_loss, multi_head_dpo_loss
from moafast.testing import assert_close, assert_error_within_factor

B, T, H, V, K = 5, 9, 16, 37, 3


def _inputs(dtype=torch.float64, seed=0, bias=False, heads=K):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(2 * B, T, H, generator=g, dtype=torch.float64)
    weight = torch.randn(heads, V, H, generator=g, dtype=torch.float64) / 4
    labels = torch.randint(0, V, (2 * B, T), generator=g)
    labels[:, :3] = -100  # prompt
    labels[1, 6:] = -100  # padding
    labels[B + 3, :] = -100  # an empty rejected completion
    head_index = torch.tensor([0, 2, 2, 0, 2]) % heads  # head 1 absent when K = 3
    ref = [torch.randn(B, generator=g, dtype=torch.float64) for _ in range(2)]
    b = torch.randn(heads, V, generator=g, dtype=torch.float64) if bias else None
    return [x.to(dtype) if x is not None else None for x in (hidden, weight, b)], labels, head_index, ref


def reference_loss(hidden, weight, bias, labels, head_index, ref_c, ref_r, **loss_kwargs):
    """All K heads' full logits in float64, each pair's head kept, then the per-head mean of mean losses."""
    logits = torch.einsum("sth,kvh->kstv", hidden, weight)
    if bias is not None:
        logits = logits + bias[:, None, None, :]
    heads = torch.cat([head_index, head_index])
    routed = logits[heads, torch.arange(2 * B)]
    mask = labels != -100
    token_logps = routed.log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    logps = (token_logps * mask).sum(1)
    lengths = mask.sum(1)
    losses = dpo_loss(logps[:B], logps[B:], ref_c, ref_r, chosen_lengths=lengths[:B], rejected_lengths=lengths[B:],
                      **loss_kwargs).losses
    return torch.stack([losses[head_index == k].mean() for k in range(weight.shape[0]) if (head_index == k).any()]).mean()


def _grads(fn, tensors):
    leaves = [t.clone().requires_grad_() if t is not None else None for t in tensors]
    loss = fn(*leaves)
    loss.backward()
    return loss.detach(), [t.grad if t is not None else None for t in leaves]


LOSS_CASES = [
    {"loss_type": "sigmoid", "beta": 0.3},
    {"loss_type": "ipo", "beta": 0.5},
    {"loss_type": "robust", "beta": 0.2, "label_smoothing": 0.1},
    {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.5], "beta": 0.1},
    {"loss_type": "apo_down", "beta": 0.4},
    {"loss_type": "sigmoid", "beta": 0.3, "f_divergence_type": "js_divergence"},
]


@pytest.mark.parametrize("loss_kwargs", LOSS_CASES, ids=lambda c: f"{c['loss_type']}-{c.get('f_divergence_type', '')}")
@pytest.mark.parametrize("chunk_size", [None, 1, 20])
def test_matches_the_reference_in_float64(loss_kwargs, chunk_size) -> None:
    (hidden, weight, bias), labels, head_index, (ref_c, ref_r) = _inputs(bias=True)
    expected, expected_grads = _grads(
        lambda h, w, b: reference_loss(h, w, b, labels, head_index, ref_c, ref_r, **loss_kwargs), (hidden, weight, bias))
    loss, grads = _grads(lambda h, w, b: fused_linear_dpo_loss(
        h, w, labels, head_index, ref_c, ref_r, bias=b, chunk_size=chunk_size, **loss_kwargs)[0], (hidden, weight, bias))
    assert_close(loss, expected, name="loss")
    for name, got, want in zip(("d_hidden", "d_weight", "d_bias"), grads, expected_grads):
        assert_close(got, want, name=name)
    assert (grads[1][1] == 0).all(), "the absent head gets no gradient"


def test_equals_the_recompute_path_and_its_metrics() -> None:
    (hidden, weight, _), labels, head_index, (ref_c, ref_r) = _inputs()
    outputs = {}
    for fused in (True, False):
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        out = multi_head_dpo_loss(h, w, labels, head_index, ref_c, ref_r, grad_in_forward=fused, beta=0.2,
                                  chunk_size=4)
        out.loss.backward()
        outputs[fused] = (out, h.grad, w.grad)
    (fused, fh, fw), (recomputed, rh, rw) = outputs[True], outputs[False]
    assert_close(fused.loss, recomputed.loss, name="loss")
    assert_close(fh, rh, name="d_hidden")
    assert_close(fw, rw, name="d_weight")
    for key in fused.metrics:
        assert_close(fused.metrics[key], recomputed.metrics[key], name=key)


def test_single_head_weight_needs_no_head_index() -> None:
    (hidden, weight, _), labels, _, (ref_c, ref_r) = _inputs(heads=1)
    zeros = torch.zeros(B, dtype=torch.int64)
    expected, expected_grads = _grads(
        lambda h, w: reference_loss(h, w, None, labels, zeros, ref_c, ref_r), (hidden, weight))
    loss, grads = _grads(lambda h, w: fused_linear_dpo_loss(h, w[0], labels, None, ref_c, ref_r)[0],
                         (hidden, weight))
    assert_close(loss, expected, name="loss")
    assert_close(grads[0], expected_grads[0], name="d_hidden")
    assert_close(grads[1], expected_grads[1], name="d_weight")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_error_within_twice_pytorchs(dtype) -> None:
    (hidden, weight, _), labels, head_index, (ref_c, ref_r) = _inputs()
    exact, exact_grads = _grads(lambda h, w: reference_loss(h, w, None, labels, head_index, ref_c, ref_r),
                                (hidden, weight))
    low = [hidden.to(dtype), weight.to(dtype)]
    baseline, baseline_grads = _grads(lambda h, w: reference_loss(h, w, None, labels, head_index, ref_c.to(dtype),
                                                                  ref_r.to(dtype)), low)
    ours, ours_grads = _grads(lambda h, w: fused_linear_dpo_loss(h, w, labels, head_index, ref_c.float(),
                                                                 ref_r.float())[0], low)
    assert ours_grads[0].dtype == dtype and ours_grads[1].dtype == dtype
    assert_error_within_factor(ours, baseline, exact, name="loss")
    for name, o, b, e in zip(("d_hidden", "d_weight"), ours_grads, baseline_grads, exact_grads):
        assert_error_within_factor(o, b, e, name=name)


def test_opcheck_and_compile() -> None:
    (hidden, weight, bias), labels, head_index, (ref_c, ref_r) = _inputs(dtype=torch.float32, bias=True)
    args = (hidden.requires_grad_(), weight.requires_grad_(), labels, head_index, ref_c.float(), ref_r.float(),
            bias.requires_grad_(), ["sigmoid"], [1.0], 0.1, 0.0, "reverse_kl", 1.0, 0.05, -100, 7)
    torch.library.opcheck(torch.ops.moafast.fused_linear_dpo_loss.default, args)
    compiled = torch.compile(lambda h, w: fused_linear_dpo_loss(h, w, labels, head_index, ref_c.float(),
                                                                ref_r.float(), chunk_size=7)[0], fullgraph=True)
    loss = compiled(hidden, weight)
    loss.backward()
    eager = fused_linear_dpo_loss(hidden.detach(), weight.detach(), labels, head_index, ref_c.float(), ref_r.float())
    assert_close(loss, eager[0], name="compiled loss")
    assert hidden.grad is not None and weight.grad is not None


def test_bad_input_names_the_argument_and_the_fix() -> None:
    (hidden, weight, _), labels, head_index, _ = _inputs()
    with pytest.raises(ValueError, match="grad_in_forward=False"):
        fused_linear_dpo_loss(hidden, weight, labels, head_index, loss_type="aot")
    with pytest.raises(ValueError, match="head_index"):
        fused_linear_dpo_loss(hidden, weight, labels, None)
    with pytest.raises(ValueError, match=r"hidden: expected \[2B, T, H\]"):
        fused_linear_dpo_loss(hidden[:3], weight, labels[:3], head_index)
    with pytest.raises(ValueError, match="labels"):
        fused_linear_dpo_loss(hidden, weight, labels[:, :4], head_index)
    bad = labels.clone()
    bad[2, 5] = V
    with pytest.raises(IndexError, match=r"labels\[2, 5\]"):
        fused_linear_dpo_loss(hidden, weight, bad, head_index)
    with pytest.raises(IndexError, match="head_index"):
        fused_linear_dpo_loss(hidden, weight, labels, head_index + 3)


def test_batch_coupled_losses_take_the_recompute_path() -> None:
    (hidden, weight, _), labels, head_index, (ref_c, ref_r) = _inputs()
    expected, expected_grads = _grads(
        lambda h, w: reference_loss(h, w, None, labels, head_index, ref_c, ref_r, loss_type="aot"), (hidden, weight))
    loss, grads = _grads(lambda h, w: multi_head_dpo_loss(h, w, labels, head_index, ref_c, ref_r,
                                                          loss_type="aot").loss, (hidden, weight))
    assert_close(loss, expected, name="loss")
    assert_close(grads[1], expected_grads[1], name="d_weight")
