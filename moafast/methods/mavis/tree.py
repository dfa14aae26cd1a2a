"""MAVIS tree data: responses sampled as trees (a prompt, ``root_children`` continuations, ``children`` per node
for ``num_layers`` layers), leaves scored by outcome rewards, internal nodes labelled bottom-up with the mean
of their children, minus ``kl_penalty`` times the mean full-path log-ratio ``sum_t log pi/pi_ref`` of the leaves
below them (the soft values of MAVIS's later rounds)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from moafast._hf_cache import left_padded
from moafast.generation import TiltedGeneration

# sampler(input_ids [B, T] left-padded, attention_mask, max_new_tokens, seed) -> TiltedGeneration
Sampler = Callable[[torch.Tensor, torch.Tensor, int, int], TiltedGeneration]


@dataclass
class TreeNode:
    """A response prefix ``tokens`` of prompt ``prompt``; ``log_ratio`` sums log pi/pi_ref over its tokens."""

    prompt: int
    tokens: list[int]
    parent: int | None
    depth: int
    log_ratio: float = 0.0
    finished: bool = False
    children: list[int] = field(default_factory=list)
    rewards: list[float] | None = None
    labels: list[float] | None = None


def segment_length(tokens_left: int, layers_left: int, rng: random.Random) -> int:
    """MAVIS's layer lengths: uniform in ``[1, 2 * tokens_left / layers_left)``; the last layer takes the rest."""
    if layers_left <= 1:
        return tokens_left
    return rng.randint(1, max(1, min(tokens_left - layers_left + 1, 2 * tokens_left // layers_left - 1)))


def sample_trees(sampler: Sampler, prompt_ids: Sequence[list[int]], *, root_children: int, children: int,
                 num_layers: int, max_new_tokens: int, eos_token_id: int | None, pad_token_id: int, seed: int,
                 batch_size: int, device: torch.device | str = "cpu", progress: bool = False) -> list[TreeNode]:
    """Grows one tree per prompt, layer by layer; returns the nodes (parents before their children)."""
    rng = random.Random(seed)
    nodes = [TreeNode(prompt=p, tokens=[], parent=None, depth=0) for p in range(len(prompt_ids))]
    frontier = list(range(len(nodes)))
    used = 0
    for layer in range(num_layers):
        length = segment_length(max_new_tokens - used, num_layers - layer, rng)
        used += length
        fan_out = root_children if layer == 0 else children
        parents = [n for n in frontier for _ in range(fan_out) if not nodes[n].finished]
        frontier = []
        chunks = range(0, len(parents), batch_size)
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc=f"tree layer {layer + 1}/{num_layers}", unit="batch")
        for start in chunks:
            batch = parents[start:start + batch_size]
            ids, mask = left_padded([prompt_ids[nodes[n].prompt] + nodes[n].tokens for n in batch], pad_token_id)
            out = sampler(ids.to(device), mask.to(device), length, seed * 7919 + layer * 104729 + start)
            new = out.sequences[:, ids.shape[1]:].cpu()
            for row, parent in enumerate(batch):
                count = int(out.new_tokens[row])
                tokens = new[row, :count].tolist()
                finished = (eos_token_id is not None and eos_token_id in tokens) or used >= max_new_tokens
                nodes.append(TreeNode(prompt=nodes[parent].prompt, tokens=nodes[parent].tokens + tokens,
                                      parent=parent, depth=layer + 1,
                                      log_ratio=nodes[parent].log_ratio + float(out.log_ratio[row]),
                                      finished=finished))
                nodes[parent].children.append(len(nodes) - 1)
                frontier.append(len(nodes) - 1)
    return nodes


def label_trees(nodes: list[TreeNode], rewards_of_leaf: Callable[[TreeNode], Sequence[float]],
                kl_penalty: float = 0.0) -> None:
    """Fills ``rewards`` of the leaves and ``labels`` of every node: the mean over children (leaves: their
    rewards), minus ``kl_penalty`` times the mean ``log_ratio`` of the leaves below."""
    leaf_ratios: dict[int, list[float]] = {}
    values: dict[int, list[float]] = {}
    for index in range(len(nodes) - 1, -1, -1):
        node = nodes[index]
        if not node.children:
            node.rewards = [float(r) for r in rewards_of_leaf(node)]
            values[index], leaf_ratios[index] = node.rewards, [node.log_ratio]
        else:
            per_child = [values[c] for c in node.children]
            values[index] = [sum(column) / len(column) for column in zip(*per_child)]
            leaf_ratios[index] = [r for c in node.children for r in leaf_ratios[c]]
        mean_ratio = sum(leaf_ratios[index]) / len(leaf_ratios[index])
        node.labels = [v - kl_penalty * mean_ratio for v in values[index]]


def save_trees(nodes: list[TreeNode], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps([asdict(node) for node in nodes]))


def load_trees(path: str | Path) -> list[TreeNode]:
    return [TreeNode(**row) for row in json.loads(Path(path).read_text())]
