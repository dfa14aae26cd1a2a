"""Reference log-probs for MAH-DPO: every reference head is the SFT model's ``lm_head`` (the paper's frozen
reference copies it K times), so one head scores every pair. Computed once per dataset and cached on disk,
or per batch from a frozen copy of the initial backbone."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from moafast.methods.mah_dpo.data import TokenizedPair, collate_pairs
from moafast.methods.mah_dpo.model import _inner_model, shift_labels
from moafast.losses import sequence_logps


class ReferenceScorer(nn.Module):
    """Summed completion log-probs under a causal LM's own ``lm_head`` (one head), without gradients. The
    backbone is used as it is: pass a frozen copy, or the live model before training starts."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``[S]`` log-probs of ``labels[S, T]`` (-100 outside the completions, unshifted)."""
        inner = _inner_model(self.backbone)
        lm_head = inner.get_output_embeddings()
        was_training = self.backbone.training
        self.backbone.eval()  # no dropout in the reference
        try:
            hidden = inner.get_decoder()(input_ids=input_ids, attention_mask=attention_mask,
                                         use_cache=False).last_hidden_state
        finally:
            self.backbone.train(was_training)
        return sequence_logps(hidden.to(lm_head.weight.dtype), lm_head.weight, shift_labels(labels),
                              bias=lm_head.bias).float()


def data_fingerprint(pairs: Sequence[TokenizedPair], model_name: str) -> str:
    """Hash of the tokenised pairs and the reference model's name: the cache key."""
    digest = hashlib.sha256(model_name.encode())
    for pair in pairs:
        digest.update(json.dumps([pair.prompt, pair.chosen, pair.rejected]).encode())
    return digest.hexdigest()


def compute_reference_logps(scorer: ReferenceScorer, pairs: Sequence[TokenizedPair], pad_token_id: int,
                            batch_size: int, device: torch.device, rank: int = 0, world_size: int = 1,
                            all_reduce=None) -> torch.Tensor:
    """``[n, 2]`` (chosen, rejected) reference log-probs. Process ``rank`` scores the rows ``rank::world_size``;
    ``all_reduce`` (a sum over processes) assembles the whole table on every process."""
    table = torch.zeros(len(pairs), 2, dtype=torch.float32, device=device)
    mine = list(range(rank, len(pairs), world_size))
    for start in range(0, len(mine), batch_size):
        rows = mine[start:start + batch_size]
        batch = collate_pairs([pairs[i] for i in rows], [0] * len(rows), pad_token_id)
        logps = scorer(batch["input_ids"].to(device), batch["attention_mask"].to(device), batch["labels"].to(device))
        table[rows] = torch.stack([logps[:len(rows)], logps[len(rows):]], dim=1)
    return all_reduce(table) if all_reduce is not None and world_size > 1 else table


def load_cached(path: Path, fingerprint: str) -> torch.Tensor | None:
    """The cached table at ``path`` when its fingerprint matches, else ``None``."""
    from safetensors import safe_open

    if not path.exists():
        return None
    with safe_open(str(path), framework="pt") as f:
        if (f.metadata() or {}).get("fingerprint") != fingerprint:
            return None
        return f.get_tensor("logps")


def save_cached(path: Path, table: torch.Tensor, fingerprint: str) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"logps": table.cpu().contiguous()}, str(path), metadata={"fingerprint": fingerprint})
