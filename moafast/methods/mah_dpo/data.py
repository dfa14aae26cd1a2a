"""Per-objective preference data for MAH-DPO: loading, tokenising, balanced batches and collation.

Rows have the usual ``prompt``/``chosen``/``rejected`` fields (the MAH-DPO JSONs' ``question`` is accepted
for ``prompt``). Each batch holds the same number of pairs of every objective, as in the paper's code; each
epoch draws a fresh permutation of every objective, truncated to the smallest objective.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

IGNORE_INDEX = -100


def load_preference_rows(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``.json`` (a list) or ``.jsonl`` file, each with ``prompt`` (or ``question``), ``chosen``,
    ``rejected`` strings."""
    path = Path(path)
    text = path.read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl" \
        else json.loads(text)
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of preference rows (or .jsonl lines)")
    return [_normalise_row(row, f"{path} row {i}") for i, row in enumerate(rows)]


def _normalise_row(row: dict, where: str) -> dict[str, str]:
    if "prompt" not in row and "question" in row:
        row = {**row, "prompt": row["question"]}
    missing = [key for key in ("prompt", "chosen", "rejected") if not isinstance(row.get(key), str)]
    if missing:
        raise ValueError(f"{where}: expected string fields prompt, chosen, rejected; missing or not text: {missing}")
    return {key: row[key] for key in ("prompt", "chosen", "rejected")}


@dataclass(frozen=True)
class TokenizedPair:
    prompt: list[int]
    chosen: list[int]
    rejected: list[int]


def tokenize_rows(tokenizer, rows: Sequence[dict[str, str]], max_length: int,
                  max_prompt_length: int) -> list[TokenizedPair]:
    """Token ids of each pair: the prompt keeps its last ``max_prompt_length`` tokens, each completion gets
    EOS and is cut so that prompt + completion fit ``max_length``."""
    if max_prompt_length >= max_length:
        raise ValueError(f"max_prompt_length ({max_prompt_length}) must be below max_length ({max_length})")
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer: needs an eos_token (it ends every completion)")
    pairs = []
    for row in (_normalise_row(r, f"row {i}") for i, r in enumerate(rows)):
        prompt = tokenizer(row["prompt"], add_special_tokens=True)["input_ids"][-max_prompt_length:]
        room = max_length - len(prompt)

        def completion(text: str) -> list[int]:
            return (tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])[:room]

        pairs.append(TokenizedPair(prompt, completion(row["chosen"]), completion(row["rejected"])))
    return pairs


def collate_pairs(pairs: Sequence[TokenizedPair], head_index: Sequence[int], pad_token_id: int) -> dict:
    """``input_ids``/``attention_mask``/``labels`` ``[2B, T]`` (rows ``[chosen; rejected]``, right-padded,
    labels -100 on prompt and padding) and ``head_index[B]``."""
    sequences = [p.prompt + p.chosen for p in pairs] + [p.prompt + p.rejected for p in pairs]
    prompts = [len(p.prompt) for p in pairs] * 2
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.int64)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.int64)
    labels = torch.full((len(sequences), width), IGNORE_INDEX, dtype=torch.int64)
    for row, (tokens, prompt) in enumerate(zip(sequences, prompts)):
        input_ids[row, :len(tokens)] = torch.tensor(tokens)
        attention_mask[row, :len(tokens)] = 1
        labels[row, prompt:len(tokens)] = torch.tensor(tokens[prompt:])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
            "head_index": torch.tensor(list(head_index), dtype=torch.int64)}


class BalancedSchedule:
    """Which pairs each process sees at each micro-batch: ``pairs_per_objective`` pairs of every objective per
    process, so every process's batch (and the global one) is balanced across objectives.

    Micro-batch ``m`` of epoch ``e = m // micro_batches_per_epoch`` takes the next slice of a permutation of
    each objective seeded by ``(seed, e, k)``; everything is a function of ``m``, so a resumed run sees
    exactly the batches it would have seen.
    """

    def __init__(self, sizes: Sequence[int], pairs_per_objective: int, world_size: int = 1, seed: int = 0) -> None:
        if not sizes or min(sizes) < 1:
            raise ValueError(f"objectives: every objective needs at least one pair, got sizes {list(sizes)}")
        if pairs_per_objective < 1:
            raise ValueError(f"pairs_per_objective: expected >= 1, got {pairs_per_objective}")
        self.sizes, self.per_objective, self.world_size, self.seed = list(sizes), pairs_per_objective, world_size, seed
        self.used_per_epoch = min(sizes)  # the paper truncates every objective to the smallest one
        self.micro_batches_per_epoch = self.used_per_epoch // (pairs_per_objective * world_size)
        if self.micro_batches_per_epoch == 0:
            raise ValueError(f"batch: {pairs_per_objective} pairs per objective x {world_size} processes exceed the "
                             f"smallest objective ({self.used_per_epoch} pairs); lower per_device_batch_size")

    def _permutation(self, epoch: int, objective: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch * 1009 + objective)
        return torch.randperm(self.sizes[objective], generator=generator)[:self.used_per_epoch]

    def batch(self, micro_batch: int, rank: int = 0) -> list[tuple[int, int]]:
        """``(objective, row)`` of the pairs of process ``rank`` at ``micro_batch``."""
        epoch, position = divmod(micro_batch, self.micro_batches_per_epoch)
        start = (position * self.world_size + rank) * self.per_objective
        return [(k, int(row)) for k in range(len(self.sizes))
                for row in self._permutation(epoch, k)[start:start + self.per_objective]]
