"""MAVIS value models and their per-step candidate scoring with a shared prefix cache.

``ValueModel``: ``V(s)`` = a linear score of a transformer backbone's last hidden state at the last real token
of the prefix ``s`` (the backbone of any causal LM, LoRA optional). ``CandidateScorer`` gives ``Q(s, a) =
V(s + a)`` for the k candidate tokens ``a`` of every request in one forward per decoding step: the prefix enters
the backbone's KV cache once, incrementally, and the k candidates attend to the prefix and to themselves only
(a 4-D mask, all at the next position), after which the cache is cut back to the prefix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from moafast._hf_cache import cache_keyword, positions_from_mask, returned_cache

SCORE_FILE = "score.safetensors"
CONFIG_FILE = "value_model.json"


class ValueModel(torch.nn.Module):
    """``V(s)``: ``score(h_last(s))`` with ``h_last`` the backbone's hidden state at the last real token."""

    def __init__(self, backbone: torch.nn.Module, hidden_size: int | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        hidden_size = hidden_size or backbone.config.hidden_size
        self.score = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.score.weight)
        torch.nn.init.zeros_(self.score.bias)

    @classmethod
    def from_causal_lm(cls, name_or_path: str, lora: dict[str, Any] | None = None, **kwargs: Any) -> ValueModel:
        """The transformer body of a causal LM checkpoint (its LM head is not loaded) with a fresh score head."""
        from transformers import AutoModel

        from moafast.methods._loop import apply_lora

        backbone = AutoModel.from_pretrained(name_or_path, **kwargs)
        return cls(apply_lora(backbone, lora), backbone.config.hidden_size)

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any):
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B]`` values of left- or right-padded prefixes ``[B, T]``."""
        outputs = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                                position_ids=positions_from_mask(attention_mask))
        last = attention_mask.shape[1] - 1 - attention_mask.flip(-1).long().argmax(-1)
        hidden = outputs.last_hidden_state[torch.arange(input_ids.shape[0], device=input_ids.device), last]
        return self.score(hidden).squeeze(-1)

    def save_pretrained(self, directory: str | Path) -> None:
        """``backbone/`` (HF ``save_pretrained``: the full body, or the adapter under PEFT) and the score head."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(directory / "backbone")
        save_file({k: v.detach().cpu().contiguous() for k, v in self.score.state_dict().items()},
                  directory / SCORE_FILE)
        (directory / CONFIG_FILE).write_text(json.dumps({"hidden_size": self.score.in_features}))

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs: Any) -> ValueModel:
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / CONFIG_FILE).exists():
            raise ValueError(f"directory: {directory} has no {CONFIG_FILE}; expected a ValueModel checkpoint")
        if (directory / "backbone" / "adapter_config.json").exists():
            from peft import AutoPeftModel

            backbone = AutoPeftModel.from_pretrained(directory / "backbone", **kwargs)
        else:
            from transformers import AutoModel

            backbone = AutoModel.from_pretrained(directory / "backbone", **kwargs)
        model = cls(backbone, json.loads((directory / CONFIG_FILE).read_text())["hidden_size"])
        model.score.load_state_dict(load_file(directory / SCORE_FILE))
        return model


class CandidateScorer:
    """``scorer(sequences [B, T], attention_mask [B, T], candidates [B, k]) -> [B, k]`` values ``V(s + a)``.

    Call it once per decoding step with the growing sequences (the same batch throughout); tokens it has not
    seen enter the cache together with the k candidates in one forward, and the candidates leave it again.
    """

    def __init__(self, model: ValueModel) -> None:
        self.model = model
        self.cache: Any = None
        self.length = 0
        self.keyword = cache_keyword(model.backbone)

    def reset(self) -> None:
        self.cache, self.length = None, 0

    def _mask(self, attention_mask: torch.Tensor, new: int, k: int) -> torch.Tensor:
        """``[B, 1, new + k, T + k]`` bool: new tokens attend causally to real tokens (and to themselves);
        each candidate to every real token of the prefix and to itself."""
        batch, total = attention_mask.shape
        keys = torch.arange(total + k, device=attention_mask.device)
        real = torch.cat([attention_mask.bool(), torch.zeros(batch, k, dtype=torch.bool,
                                                             device=attention_mask.device)], 1)
        new_queries = torch.arange(total - new, total, device=attention_mask.device)
        causal = keys[None, :] <= new_queries[:, None]                                   # [new, T + k]
        new_rows = (causal[None] & real[:, None]) | (keys[None, None] == new_queries[None, :, None])
        candidate_queries = torch.arange(total, total + k, device=attention_mask.device)
        own = keys[None, :] == candidate_queries[:, None]                                # [k, T + k]
        prefix = real.clone()
        prefix[:, total:] = False
        candidate_rows = prefix[:, None] | own[None]
        return torch.cat([new_rows, candidate_rows], 1)[:, None]

    @torch.no_grad()
    def __call__(self, sequences: torch.Tensor, attention_mask: torch.Tensor,
                 candidates: torch.Tensor) -> torch.Tensor:
        if candidates is None:
            raise ValueError("candidates: MAVIS scores the base model's top-k candidates; pass candidates_k")
        batch, total = sequences.shape
        new = total - self.length
        if new < 0 or (self.cache is not None and new == 0):
            raise ValueError(f"sequences: expected more than the {self.length} tokens already scored; call reset() "
                             "before a new batch")
        k = candidates.shape[1]
        positions = positions_from_mask(attention_mask)
        next_position = attention_mask.long().sum(-1, keepdim=True).expand(batch, k)
        outputs = self.model.hidden_states(
            torch.cat([sequences[:, self.length:], candidates], 1), self._mask(attention_mask, new, k),
            position_ids=torch.cat([positions[:, self.length:], next_position], 1), use_cache=True,
            **{self.keyword: self.cache})
        self.cache = returned_cache(outputs)
        self.cache.crop(-k)  # negative: drop the k candidates (accepted by every transformers version)
        self.length = total
        return self.model.score(outputs.last_hidden_state[:, new:]).squeeze(-1)
