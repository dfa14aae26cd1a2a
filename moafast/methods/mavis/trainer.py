"""MAVIS value training on ``accelerate``: rounds of tree sampling, labelling and MSE regression, one value model
per objective, checkpoints that resume where the run stopped.

Layout of ``output_dir``: ``trees/round<r>[_<objective>].json`` (sampled, labelled trees),
``units/round<r>_<objective>/checkpoint-<step>`` (training state), ``values/round<r>/<objective>`` (the trained
value model), ``mavis_state.json`` (finished units) and ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from moafast._hf_cache import left_padded
from moafast.generation import generate
from moafast.methods import _loop as loop
from moafast.methods.mavis.config import MavisConfig
from moafast.methods.mavis.decoding import mavis_generate
from moafast.methods.mavis.tree import label_trees, load_trees, sample_trees, save_trees
from moafast.methods.mavis.value_model import ValueModel

PROGRESS_FILE = "mavis_state.json"


def load_prompts(path: str | Path) -> list[str]:
    text = Path(path).read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()] if str(path).endswith(".jsonl") \
        else json.loads(text)
    if not rows or any("prompt" not in row for row in rows):
        raise ValueError(f"prompts: {path} must hold rows with a 'prompt' field")
    return [row["prompt"] for row in rows]


def value_model_path(output_dir: str | Path, round_index: int, objective: str) -> Path:
    return Path(output_dir) / "values" / f"round{round_index}" / objective


def _collate(rows: list[tuple[list[int], float]], pad_token_id: int) -> dict[str, torch.Tensor]:
    input_ids, mask = left_padded([ids for ids, _ in rows], pad_token_id)
    return {"input_ids": input_ids, "attention_mask": mask,
            "labels": torch.tensor([label for _, label in rows], dtype=torch.float32)}


class MavisValueTrainer:
    """Trains ``len(config.objectives)`` value models for ``config.rounds`` rounds; ``train()`` returns the last
    unit's metrics. ``reward_fn`` defaults to ``config.reward_function``."""

    def __init__(self, config: MavisConfig, policy: Any = None, tokenizer: Any = None,
                 reward_fn: loop.RewardFunction | None = None) -> None:
        self.config = config
        self.accelerator = loop.make_accelerator()
        self.device = self.accelerator.device
        self.tokenizer = tokenizer or loop.load_tokenizer(config.tokenizer_name_or_path or config.model_name_or_path)
        self.pad_token_id = loop.pad_token_id(self.tokenizer)
        self.eos_token_id = self.tokenizer.eos_token_id
        self.reward_fn = reward_fn or loop.load_reward_function(config.reward_function)
        if policy is None:
            from transformers import AutoModelForCausalLM

            policy = AutoModelForCausalLM.from_pretrained(config.model_name_or_path)
        self.policy = policy.to(self.device).eval()
        self.prompts = load_prompts(config.prompts)
        self.prompt_ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"][-config.max_prompt_length:]
                           for p in self.prompts]
        self.output_dir = Path(config.output_dir)

    # ---- progress across restarts ----------------------------------------------------------------------

    def _finished_units(self) -> list[str]:
        path = self.output_dir / PROGRESS_FILE
        return json.loads(path.read_text())["finished"] if path.exists() else []

    def _mark_finished(self, unit: str) -> None:
        if self.accelerator.is_main_process:
            finished = self._finished_units() + [unit]
            (self.output_dir / PROGRESS_FILE).write_text(json.dumps({"finished": finished}))
        self.accelerator.wait_for_everyone()

    # ---- trees -------------------------------------------------------------------------------------------

    def _sampler(self, round_index: int, objective: int):
        config = self.config
        if round_index == 0:
            def base(ids, mask, length, seed):
                return generate(self.policy, ids, attention_mask=mask, max_new_tokens=length, top_k=config.top_k,
                                temperature=config.temperature, seed=seed, eos_token_id=self.eos_token_id,
                                pad_token_id=self.pad_token_id)

            return base
        value_model = ValueModel.from_pretrained(
            value_model_path(self.output_dir, round_index - 1, config.objectives[objective])).to(self.device).eval()

        def tilted(ids, mask, length, seed):
            weights = torch.ones(ids.shape[0], 1, device=ids.device)
            return mavis_generate(self.policy, [value_model], ids, attention_mask=mask, weights=weights,
                                  beta=config.decode_beta, top_k=config.top_k, temperature=config.temperature,
                                  max_new_tokens=length, seed=seed, eos_token_id=self.eos_token_id,
                                  pad_token_id=self.pad_token_id)

        return tilted

    def trees(self, round_index: int, objective: int) -> list:
        """The labelled trees of a unit: round 0's are shared by every objective; later rounds have their own.
        Sampled once (each process its share of the prompts) and stored, so a restart reuses them."""
        config = self.config
        name = "round0" if round_index == 0 else f"round{round_index}_{config.objectives[objective]}"
        path = self.output_dir / "trees" / f"{name}.json"
        if not path.exists():
            rank, world = self.accelerator.process_index, self.accelerator.num_processes
            mine = list(range(rank, len(self.prompts), world))
            nodes = sample_trees(self._sampler(round_index, objective), [self.prompt_ids[p] for p in mine],
                                 root_children=config.root_children, children=config.children,
                                 num_layers=config.num_layers, max_new_tokens=config.max_new_tokens,
                                 eos_token_id=self.eos_token_id, pad_token_id=self.pad_token_id,
                                 seed=config.seed + 1000 * round_index + 17 * objective + rank,
                                 batch_size=config.sampling_batch_size, device=self.device,
                                 progress=self.accelerator.is_local_main_process)
            for node in nodes:
                node.prompt = mine[node.prompt]

            def rewards(node):
                response = self.tokenizer.decode(node.tokens, skip_special_tokens=True)
                return self.reward_fn(self.prompts[node.prompt], response)

            label_trees(nodes, rewards, kl_penalty=config.kl_penalty if round_index > 0 else 0.0)
            shard = path.with_suffix(f".rank{rank}.json")
            save_trees(nodes, shard)
            self.accelerator.wait_for_everyone()
            if self.accelerator.is_main_process:
                merged = []
                for r in range(world):
                    part = path.with_suffix(f".rank{r}.json")
                    offset = len(merged)
                    for node in load_trees(part):
                        node.parent = None if node.parent is None else node.parent + offset
                        node.children = [c + offset for c in node.children]
                        merged.append(node)
                    part.unlink()
                save_trees(merged, path)
            self.accelerator.wait_for_everyone()
        return load_trees(path)

    # ---- value regression --------------------------------------------------------------------------------

    def train_unit(self, round_index: int, objective: int) -> dict[str, Any]:
        """MSE regression of one objective's value model on its labelled tree nodes."""
        config = self.config
        accelerator = loop.make_accelerator()  # a fresh one per unit: its checkpoints hold this model only
        name = config.objectives[objective]
        nodes = self.trees(round_index, objective)
        rows = [(self.prompt_ids[n.prompt] + n.tokens, n.labels[objective]) for n in nodes]
        if round_index == 0:
            model = ValueModel.from_causal_lm(config.value_model_name_or_path or config.model_name_or_path,
                                              lora=config.lora)
        else:
            model = ValueModel.from_pretrained(value_model_path(self.output_dir, round_index - 1, name))
        model.to(self.device).train()
        optimizer = loop.make_optimizer(model, config.optimizer, config.learning_rate)
        scheduler = loop.warmup_schedule(optimizer, config.warmup_steps)
        model, optimizer = accelerator.prepare(model, optimizer)
        accelerator.register_for_checkpointing(scheduler)
        unit_dir = self.output_dir / "units" / f"round{round_index}_{name}"
        step = loop.resume(accelerator, unit_dir, "latest")
        world, batch = accelerator.num_processes, config.per_device_batch_size
        batches_per_epoch = max(1, math.ceil(len(rows) / (batch * world)))
        total = min(config.max_steps, config.epochs * batches_per_epoch)
        metrics: dict[str, Any] = {}
        bar = tqdm(total=total, initial=step, desc=f"values round {round_index} {name}",
                   disable=not accelerator.is_local_main_process)
        while step < total:
            epoch, position = divmod(step, batches_per_epoch)
            order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(config.seed + epoch)).tolist()
            start = (position * world + accelerator.process_index) * batch
            chunk = [rows[i] for i in order[start:start + batch]] or [rows[order[0]]]
            inputs = {k: v.to(self.device) for k, v in _collate(chunk, self.pad_token_id).items()}
            values = model(inputs["input_ids"], inputs["attention_mask"])
            loss = torch.nn.functional.mse_loss(values, inputs["labels"])
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            bar.update(1)
            metrics = {"round": round_index, "objective": name, "step": step,
                       "mse": accelerator.reduce(loss.detach(), "mean").item()}
            if accelerator.is_main_process and step % config.logging_steps == 0:
                loop.append_metrics(self.output_dir, metrics)
            if step % config.save_steps == 0 and step < total:
                loop.save_checkpoint(accelerator, unit_dir, step, config.to_dict())
        bar.close()
        if accelerator.is_main_process:
            accelerator.unwrap_model(model).save_pretrained(value_model_path(self.output_dir, round_index, name))
        accelerator.wait_for_everyone()
        return metrics

    def train(self) -> dict[str, Any]:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        metrics: dict[str, Any] = {}
        for round_index in range(self.config.rounds):
            for objective, name in enumerate(self.config.objectives):
                unit = f"round{round_index}/{name}"
                if unit in self._finished_units():
                    continue
                metrics = self.train_unit(round_index, objective)
                self._mark_finished(unit)
        return metrics

    def value_models(self, round_index: int | None = None) -> list[ValueModel]:
        """The trained value models of ``round_index`` (default: the last round), one per objective."""
        round_index = self.config.rounds - 1 if round_index is None else round_index
        return [ValueModel.from_pretrained(value_model_path(self.output_dir, round_index, name)).to(self.device).eval()
                for name in self.config.objectives]
