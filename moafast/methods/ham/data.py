"""Scored data for HaM: rows ``{"prompt", "response", "rewards": [J floats]}``, tokenised and collated."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from moafast.methods.mah_dpo.data import IGNORE_INDEX


@dataclass(frozen=True)
class ScoredSequence:
    prompt: list[int]
    response: list[int]
    rewards: tuple[float, ...]


def load_scored_rows(path: str | Path, objectives: int) -> list[dict]:
    """Rows of a ``.json`` list or ``.jsonl`` file, each with ``prompt``, ``response`` and ``objectives``
    finite ``rewards``."""
    path = Path(path)
    text = path.read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl" \
        else json.loads(text)
    for i, row in enumerate(rows):
        rewards = row.get("rewards")
        if not isinstance(row.get("prompt"), str) or not isinstance(row.get("response"), str):
            raise ValueError(f"{path} row {i}: expected string fields prompt and response")
        if not isinstance(rewards, list) or len(rewards) != objectives or \
                not all(isinstance(r, (int, float)) and r == r and abs(r) != float("inf") for r in rewards):
            raise ValueError(f"{path} row {i}: expected rewards, a list of {objectives} finite numbers (one per "
                             f"objective), got {rewards!r}")
    return rows


def tokenize_scored(tokenizer, rows: Sequence[dict], max_length: int, max_prompt_length: int) -> list[ScoredSequence]:
    """The prompt keeps its last ``max_prompt_length`` tokens; the response gets EOS and fits ``max_length``."""
    if max_prompt_length >= max_length:
        raise ValueError(f"max_prompt_length ({max_prompt_length}) must be below max_length ({max_length})")
    out = []
    for row in rows:
        prompt = tokenizer(row["prompt"], add_special_tokens=True)["input_ids"][-max_prompt_length:]
        response = tokenizer(row["response"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        out.append(ScoredSequence(prompt, response[:max_length - len(prompt)], tuple(float(r) for r in row["rewards"])))
    return out


def collate_scored(sequences: Sequence[ScoredSequence], pad_token_id: int) -> dict[str, torch.Tensor]:
    """``input_ids``/``attention_mask``/``labels`` ``[B, T]`` (labels -100 outside the response), ``rewards[B, J]``."""
    width = max(len(s.prompt) + len(s.response) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.int64)
    attention_mask = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for row, s in enumerate(sequences):
        tokens = s.prompt + s.response
        input_ids[row, :len(tokens)] = torch.tensor(tokens)
        attention_mask[row, :len(tokens)] = 1
        labels[row, len(s.prompt):len(tokens)] = torch.tensor(s.response)
    rewards = torch.tensor([s.rewards for s in sequences], dtype=torch.float32)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "rewards": rewards}
