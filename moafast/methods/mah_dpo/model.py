"""MAH-DPO's model: K LM heads on the shared backbone of any HF ``AutoModelForCausalLM``.

Head k starts as the backbone's ``lm_head`` plus ``init_noise · N(0, 1)`` (seed ``seed + 100 k``, as the paper's
code). Training scores each preference pair with its objective's head only (the routed fused head of
:func:`moafast.losses.multi_head_dpo_loss`). Inference mixes the heads: logits ``Σ_k w̃_k (h W_kᵀ)`` with
``w̃ = w / Σ w`` equal the logits of the single merged head ``Σ_k w̃_k W_k``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from moafast.losses import MultiHeadDPOOutput, multi_head_dpo_loss, sequence_logps

HEADS_FILE = "heads.safetensors"
CONFIG_FILE = "multihead_config.json"


def _inner_model(backbone: nn.Module) -> nn.Module:
    """The ``PreTrainedModel`` under a PEFT wrapper (or the backbone itself)."""
    return backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone


def shift_labels(labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """``labels[:, 1:]`` padded with ``ignore_index``, so that position t's hidden state predicts column t."""
    return torch.cat([labels[:, 1:], labels.new_full((labels.shape[0], 1), ignore_index)], dim=1)


def normalised_head_weights(weights: torch.Tensor | list[float], heads: int) -> torch.Tensor:
    """``w / Σ w`` per row of ``weights`` (``[K]`` or ``[B, K]``), which must be finite, >= 0, with a positive sum."""
    w = torch.as_tensor(weights, dtype=torch.float32)
    if w.dim() not in (1, 2) or w.shape[-1] != heads:
        raise ValueError(f"weights: expected [K] or [B, K] with K = {heads} heads, got shape {list(w.shape)}")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError(f"weights: expected finite non-negative head weights, got {w.tolist()}")
    total = w.sum(-1, keepdim=True)
    if bool((total <= 0).any()):
        raise ValueError("weights: every weight vector needs a positive sum (the heads are mixed by w / sum(w))")
    return w / total


class HeadMixture(nn.Module):
    """An output layer that mixes K heads: ``[K]`` weights give one merged head; ``[B, K]`` weights mix per row
    (``hidden`` must then have B rows). Logits are float32."""

    def __init__(self, heads: torch.Tensor, bias: torch.Tensor | None, weights: torch.Tensor) -> None:
        super().__init__()
        self.heads, self.bias = heads, bias
        self.weights = weights.to(heads.device, heads.dtype)
        if self.weights.dim() == 1:
            self.merged = torch.einsum("k,kvh->vh", self.weights, heads)
            self.merged_bias = None if bias is None else self.weights @ bias

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = hidden.to(self.heads.dtype)
        if self.weights.dim() == 1:
            return nn.functional.linear(hidden, self.merged, self.merged_bias).float()
        if hidden.shape[0] != self.weights.shape[0]:
            raise ValueError(f"weights: [B, K] weights have {self.weights.shape[0]} rows but generation runs "
                             f"{hidden.shape[0]} sequences; repeat the weights per returned sequence")
        logits = None
        for k in range(self.heads.shape[0]):
            scale = self.weights[:, k].view(-1, *([1] * (hidden.dim() - 1)))
            term = scale * nn.functional.linear(hidden, self.heads[k], None if self.bias is None else self.bias[k])
            logits = term if logits is None else logits + term
        return logits.float()


class MultiHeadCausalLM(nn.Module):
    """K heads ``heads[K, V, H]`` (and ``head_bias[K, V]`` when the LM head has a bias) on a causal-LM backbone.

    ``forward`` returns the MAH-DPO loss of a ``[chosen; rejected]`` batch, so that a DDP-wrapped model
    synchronises its gradients as usual.
    """

    def __init__(self, backbone: nn.Module, num_heads: int, *, init_noise: float = 1e-3, seed: int = 42,
                 heads: torch.Tensor | None = None, head_bias: torch.Tensor | None = None) -> None:
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"num_heads: expected at least 1 head, got {num_heads}")
        inner = _inner_model(backbone)
        config = getattr(inner, "config", None)
        if getattr(config, "final_logit_softcapping", None):
            raise ValueError("backbone: final_logit_softcapping is not supported by the fused heads")
        lm_head = inner.get_output_embeddings()
        if not isinstance(lm_head, nn.Linear):
            raise ValueError(f"backbone: expected an nn.Linear output layer (lm_head), got {type(lm_head).__name__}")
        self.backbone = backbone
        self.num_heads = num_heads
        base = lm_head.weight.detach().float()
        if heads is None:
            noise = torch.stack([torch.randn(base.shape, generator=torch.Generator().manual_seed(seed + 100 * k))
                                 for k in range(num_heads)])
            heads = base.cpu().unsqueeze(0) + init_noise * noise
        if tuple(heads.shape) != (num_heads, *base.shape):
            raise ValueError(f"heads: expected [K, V, H] = {[num_heads, *base.shape]}, got {list(heads.shape)}")
        self.heads = nn.Parameter(heads.to(base.device).clone())
        if lm_head.bias is not None and head_bias is None:
            head_bias = lm_head.bias.detach().float().cpu().expand(num_heads, -1)
        self.head_bias = None if head_bias is None else nn.Parameter(head_bias.to(base.device).clone())
        tied = lm_head.weight is inner.get_input_embeddings().weight
        if not tied:  # the original head is replaced by the K heads: keep it out of training (and of DDP)
            lm_head.requires_grad_(False)

    @property
    def decoder(self) -> nn.Module:
        return _inner_model(self.backbone).get_decoder()

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, T, H]`` final hidden states (after the backbone's last norm), in the heads' dtype."""
        out = self.decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return out.last_hidden_state.to(self.heads.dtype)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                head_index: torch.Tensor, ref_chosen_logps: torch.Tensor | None = None,
                ref_rejected_logps: torch.Tensor | None = None, **loss_kwargs: Any) -> MultiHeadDPOOutput:
        """MAH-DPO loss of ``input_ids[2B, T]`` = ``[chosen; rejected]`` with ``labels`` (-100 outside the
        completions, unshifted), pair objectives ``head_index[B]`` and reference log-probs ``[B]``."""
        hidden = self.hidden_states(input_ids, attention_mask)
        return multi_head_dpo_loss(hidden, self.heads, shift_labels(labels), head_index, ref_chosen_logps,
                                   ref_rejected_logps, bias=self.head_bias, **loss_kwargs)

    @torch.no_grad()
    def sequence_logps(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       labels: torch.Tensor) -> torch.Tensor:
        """``[K, B]`` summed completion log-probs of every sequence under every head (all-heads mode)."""
        return sequence_logps(self.hidden_states(input_ids, attention_mask), self.heads, shift_labels(labels),
                              bias=self.head_bias)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, weights: torch.Tensor | list[float], **generate_kwargs: Any):
        """``backbone.generate`` with the output layer replaced by the heads mixed with ``weights``: ``[K]`` (one
        merged head for the batch) or ``[B, K]`` (per row); each vector is normalised to sum 1."""
        mixture = HeadMixture(self.heads, self.head_bias, normalised_head_weights(weights, self.num_heads))
        inner = _inner_model(self.backbone)
        original = inner.get_output_embeddings()
        inner.set_output_embeddings(mixture)
        try:
            return self.backbone.generate(input_ids=input_ids, **generate_kwargs)
        finally:
            inner.set_output_embeddings(original)

    def save_pretrained(self, directory: str | Path) -> None:
        """``backbone/`` (HF ``save_pretrained``: the full model, or the adapter for PEFT), ``heads.safetensors``
        and ``multihead_config.json``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(directory / "backbone")
        tensors = {"heads": self.heads.detach().cpu().contiguous()}
        if self.head_bias is not None:
            tensors["head_bias"] = self.head_bias.detach().cpu().contiguous()
        save_file(tensors, directory / HEADS_FILE)
        (directory / CONFIG_FILE).write_text(json.dumps({"num_heads": self.num_heads}))

    @classmethod
    def from_pretrained(cls, directory: str | Path, **model_kwargs: Any) -> MultiHeadCausalLM:
        """Loads what :meth:`save_pretrained` wrote (a PEFT adapter through ``peft.AutoPeftModelForCausalLM``)."""
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / CONFIG_FILE).exists():
            raise ValueError(f"directory: {directory} has no {CONFIG_FILE}; expected a MultiHeadCausalLM checkpoint")
        num_heads = json.loads((directory / CONFIG_FILE).read_text())["num_heads"]
        if (directory / "backbone" / "adapter_config.json").exists():
            from peft import AutoPeftModelForCausalLM

            backbone = AutoPeftModelForCausalLM.from_pretrained(directory / "backbone", **model_kwargs)
        else:
            from transformers import AutoModelForCausalLM

            backbone = AutoModelForCausalLM.from_pretrained(directory / "backbone", **model_kwargs)
        tensors = load_file(directory / HEADS_FILE)
        return cls(backbone, num_heads, heads=tensors["heads"], head_bias=tensors.get("head_bias"))
