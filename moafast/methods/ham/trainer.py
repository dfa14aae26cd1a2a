"""The HaM trainer on ``accelerate``: scored mini-batches, the hypervolume loss of K heads (exact or by random
scalarisation), gradient accumulation, DDP, checkpoints with exact resume; evaluation returns the learned
front, its hypervolume and a plot."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from moafast.methods import _loop as loop
from moafast.methods.ham.config import HaMConfig
from moafast.methods.ham.data import collate_scored, load_scored_rows, tokenize_scored
from moafast.methods.ham.model import HaMModel
from moafast.methods.ham.objective import random_directions
from moafast.methods.mah_dpo.model import MultiHeadCausalLM
from moafast.ops import hypervolume


class HaMTrainer:
    """Trains ``config.num_heads`` heads with HaM; ``train()`` returns the last step's metrics."""

    def __init__(self, config: HaMConfig, model: Any = None, tokenizer: Any = None, accelerator: Any = None) -> None:
        self.config = config
        self.accelerator = accelerator or loop.make_accelerator()
        torch.manual_seed(config.seed)
        self.tokenizer = tokenizer or loop.load_tokenizer(config.tokenizer_name_or_path or config.model_name_or_path)
        self.pad_token_id = loop.pad_token_id(self.tokenizer)
        objectives = len(config.objectives)
        self.train_rows = load_scored_rows(config.data, objectives)
        self.train_data = tokenize_scored(self.tokenizer, self.train_rows, config.max_length, config.max_prompt_length)
        self.eval_rows = load_scored_rows(config.eval_data, objectives) if config.eval_data else []
        world = self.accelerator.num_processes
        self.steps_per_epoch = len(self.train_data) // (config.per_device_batch_size * world)
        if self.steps_per_epoch == 0:
            raise ValueError(f"per_device_batch_size: {config.per_device_batch_size} x {world} processes exceeds the "
                             f"{len(self.train_data)} scored rows of {config.data}")
        if model is None:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(config.model_name_or_path)
        if not isinstance(model, MultiHeadCausalLM):
            model = MultiHeadCausalLM(loop.apply_lora(model, config.lora), config.num_heads,
                                      init_noise=config.head_init_noise, seed=config.head_init_seed)
        elif model.num_heads != config.num_heads:
            raise ValueError(f"model: has {model.num_heads} heads but config.num_heads is {config.num_heads}")
        self.device = self.accelerator.device
        module = HaMModel(model.to(self.device), config.margin, config.length_normalise, config.chunk_size)
        optimizer = loop.make_optimizer(module, config.optimizer, config.learning_rate)
        self.scheduler = loop.warmup_schedule(optimizer, config.warmup_steps)
        self.model, self.optimizer = self.accelerator.prepare(module, optimizer)
        self.accelerator.register_for_checkpointing(self.scheduler)
        self.step = 0

    @property
    def heads_model(self) -> MultiHeadCausalLM:
        return self.accelerator.unwrap_model(self.model).heads_model

    def micro_batch(self, index: int) -> dict[str, torch.Tensor]:
        """This process's micro-batch ``index``: a slice of a permutation seeded by ``(seed, epoch)``, so a
        function of the index alone (exact resume); random-scalarisation directions seeded by the index."""
        config = self.config
        epoch, position = divmod(index, self.steps_per_epoch)
        order = torch.randperm(len(self.train_data), generator=torch.Generator().manual_seed(config.seed * 7919 + epoch))
        size, rank = config.per_device_batch_size, self.accelerator.process_index
        start = (position * self.accelerator.num_processes + rank) * size
        rows = [self.train_data[int(i)] for i in order[start:start + size]]
        batch = {k: v.to(self.device) for k, v in collate_scored(rows, self.pad_token_id).items()}
        if config.hv_mode == "scalarization":
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + index)
            batch["directions"] = random_directions(config.num_directions, len(config.objectives), generator,
                                                    torch.float32).to(self.device)
        return batch

    def train(self) -> dict[str, Any]:
        config, accelerator = self.config, self.accelerator
        self.step = loop.resume(accelerator, config.output_dir, config.resume_from_checkpoint)
        metrics: dict[str, Any] = {}
        progress = tqdm(range(self.step, config.max_steps), initial=self.step, total=config.max_steps, desc="HaM",
                        disable=not accelerator.is_main_process)
        for _ in progress:
            metrics = self._optimizer_step()
            self.step += 1
            if accelerator.is_main_process and self.step % config.logging_steps == 0:
                progress.set_postfix(hv=f"{metrics['hypervolume']:.4f}")
                loop.append_metrics(config.output_dir, metrics)
            if self.step % config.save_steps == 0 or self.step == config.max_steps:
                loop.save_checkpoint(accelerator, config.output_dir, self.step, config.to_dict())
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            self.heads_model.save_pretrained(Path(config.output_dir) / "final")
        return metrics

    def _optimizer_step(self) -> dict[str, Any]:
        config, accelerator = self.config, self.accelerator
        accumulation = config.gradient_accumulation_steps
        hv_total, points_total = 0.0, None
        for a in range(accumulation):
            batch = self.micro_batch(self.step * accumulation + a)
            with contextlib.nullcontext() if a == accumulation - 1 else accelerator.no_sync(self.model):
                out = self.model(**batch)
                accelerator.backward(out.loss / accumulation)
            hv_total += out.hypervolume / accumulation
            points_total = out.points / accumulation if points_total is None else points_total + out.points / accumulation
        grad_norm = accelerator.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        hv_mean = accelerator.reduce(torch.as_tensor(hv_total, device=self.device, dtype=torch.float32), "mean")
        points = accelerator.reduce(points_total.float(), "mean")
        metrics = {"step": self.step + 1, "hypervolume": hv_mean.item(), "grad_norm": float(grad_norm),
                   "learning_rate": self.scheduler.get_last_lr()[0]}
        for k in range(points.shape[0]):
            for j, name in enumerate(config.objectives):
                metrics[f"L/head{k}/{name}"] = points[k, j].item()
        return metrics

    @torch.no_grad()
    def evaluate(self, reward_fn: loop.RewardFunction, prompts: Sequence[str] | None = None,
                 samples_per_prompt: int = 8,
                 reference: Sequence[float] | None = None, plot_path: str | Path | None = None,
                 **generate_kwargs: Any) -> dict[str, Any]:
        """The learned front: each head samples ``samples_per_prompt`` responses per prompt (default: the
        eval_data prompts), ``reward_fn(prompt, response)`` scores them, the mean reward vector of each head is
        its point. Returns the points ``[K, J]``, their hypervolume (maximisation) against ``reference``
        (default 0) and, with ``plot_path``, a PNG of the front (the first two objectives)."""
        config = self.config
        prompts = list(prompts) if prompts is not None else [row["prompt"] for row in self.eval_rows]
        if not prompts:
            raise ValueError("prompts: none given and config.eval_data is empty; pass the prompts to evaluate on")
        model = self.heads_model
        was_training = model.training
        model.eval()
        kwargs = {"do_sample": True, "max_new_tokens": 32, "pad_token_id": self.pad_token_id, **generate_kwargs}
        points = torch.zeros(config.num_heads, len(config.objectives), dtype=torch.float64)
        for k in range(config.num_heads):
            weights = torch.zeros(config.num_heads)
            weights[k] = 1.0
            scores = []
            for prompt in prompts:
                encoded = self.tokenizer([prompt] * samples_per_prompt, return_tensors="pt").to(self.device)
                output = model.generate(encoded["input_ids"], weights=weights,
                                        attention_mask=encoded["attention_mask"], **kwargs)
                for sequence in output[:, encoded["input_ids"].shape[1]:]:
                    response = self.tokenizer.decode(sequence, skip_special_tokens=True)
                    scores.append([float(r) for r in reward_fn(prompt, response)])
            points[k] = torch.tensor(scores, dtype=torch.float64).mean(0)
        model.train(was_training)
        ref = torch.zeros(len(config.objectives), dtype=torch.float64) if reference is None else \
            torch.tensor(reference, dtype=torch.float64)
        result = {"points": points.tolist(), "hypervolume": hypervolume(points, ref, maximize=True).item()}
        if plot_path is not None:
            plot_front(points, config.objectives, plot_path)
        return result


def plot_front(points: torch.Tensor, objectives: Sequence[str], path: str | Path) -> None:
    """Scatter of the heads' points on the first two objectives, the dominated staircase drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(4.5, 4))
    xs, ys = points[:, 0].tolist(), (points[:, 1] if points.shape[1] > 1 else points[:, 0]).tolist()
    axes.scatter(xs, ys, color="tab:green", zorder=3)
    for k, (x, y) in enumerate(zip(xs, ys)):
        axes.annotate(f"head {k}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.set_xlabel(objectives[0])
    axes.set_ylabel(objectives[1] if len(objectives) > 1 else objectives[0])
    axes.set_title("HaM front")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
