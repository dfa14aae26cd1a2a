"""The MAH-DPO trainer on ``accelerate``: balanced per-objective batches, cached or frozen reference,
gradient accumulation, DDP across processes, checkpoints with exact resume, per-head metrics."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from moafast.methods import _loop as loop
from moafast.methods.mah_dpo.config import MAHDPOConfig
from moafast.methods.mah_dpo.data import BalancedSchedule, TokenizedPair, collate_pairs, load_preference_rows, \
    tokenize_rows
from moafast.methods.mah_dpo.model import MultiHeadCausalLM
from moafast.methods.mah_dpo.reference import ReferenceScorer, compute_reference_logps, data_fingerprint, \
    load_cached, save_cached

class MAHDPOTrainer:
    """Trains a :class:`MultiHeadCausalLM` with MAH-DPO; ``train()`` returns the last step's metrics.

    ``model``/``tokenizer`` default to ``config.model_name_or_path`` loaded with ``transformers``; a given
    ``model`` may be a plain causal LM (wrapped here, LoRA applied when ``config.lora``) or a
    ``MultiHeadCausalLM`` already.
    """

    def __init__(self, config: MAHDPOConfig, model: Any = None, tokenizer: Any = None, accelerator: Any = None) -> None:
        self.config = config
        self.accelerator = accelerator or loop.make_accelerator()
        torch.manual_seed(config.seed)
        self.tokenizer = tokenizer or loop.load_tokenizer(config.tokenizer_name_or_path or config.model_name_or_path)
        self.pad_token_id = loop.pad_token_id(self.tokenizer)
        self.objective_names = list(config.objectives)
        self.train_pairs = [self._tokenize(config.objectives[name]) for name in self.objective_names]
        self.eval_pairs = {name: self._tokenize(path) for name, path in config.eval_objectives.items()}

        model = self._build_model(model)
        self.device = self.accelerator.device
        model.to(self.device)
        self.reference_tables = self._reference_tables(model)

        optimizer = loop.make_optimizer(model, config.optimizer, config.learning_rate)
        self.scheduler = loop.warmup_schedule(optimizer, config.warmup_steps)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.accelerator.register_for_checkpointing(self.scheduler)  # stepped here once per optimizer step
        self.schedule = BalancedSchedule([len(p) for p in self.train_pairs],
                                         config.per_device_batch_size // config.num_heads,
                                         self.accelerator.num_processes, config.seed)
        self.step = 0

    def _tokenize(self, path: str) -> list[TokenizedPair]:
        return tokenize_rows(self.tokenizer, load_preference_rows(path), self.config.max_length,
                             self.config.max_prompt_length)

    def _build_model(self, model: Any) -> MultiHeadCausalLM:
        config = self.config
        if model is None:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(config.model_name_or_path)
        if isinstance(model, MultiHeadCausalLM):
            if model.num_heads != config.num_heads:
                raise ValueError(f"model: has {model.num_heads} heads but config.objectives has {config.num_heads}")
            backbone = model.backbone
        else:
            backbone = model
        self.frozen_reference = None
        if config.reference == "frozen":
            self.frozen_reference = ReferenceScorer(copy.deepcopy(backbone).eval().requires_grad_(False))
        if isinstance(model, MultiHeadCausalLM):
            return model
        backbone = loop.apply_lora(backbone, config.lora)
        return MultiHeadCausalLM(backbone, config.num_heads, init_noise=config.head_init_noise,
                                 seed=config.head_init_seed)

    def _reference_tables(self, model: MultiHeadCausalLM) -> dict[str, torch.Tensor]:
        """``name -> [n, 2]`` reference log-probs of every training and held-out objective (none: zeros)."""
        datasets = {f"train/{n}": p for n, p in zip(self.objective_names, self.train_pairs)}
        datasets.update({f"eval/{n}": p for n, p in self.eval_pairs.items()})
        if self.config.reference == "none":
            return {key: torch.zeros(len(pairs), 2, device=self.device) for key, pairs in datasets.items()}
        if self.frozen_reference is not None:
            self.frozen_reference.to(self.device)
        scorer = self.frozen_reference or ReferenceScorer(model.backbone)
        tables = {}
        for key, pairs in datasets.items():
            fingerprint = data_fingerprint(pairs, self.config.model_name_or_path)
            path = Path(self.config.output_dir) / "reference_logps" / f"{key.replace('/', '_')}.safetensors"
            cached = load_cached(path, fingerprint)
            if cached is None:
                cached = compute_reference_logps(
                    scorer, pairs, self.pad_token_id, max(1, self.config.per_device_batch_size), self.device,
                    self.accelerator.process_index, self.accelerator.num_processes,
                    lambda t: self.accelerator.reduce(t, "sum"))
                if self.accelerator.is_main_process:
                    save_cached(path, cached, fingerprint)
                self.accelerator.wait_for_everyone()
            tables[key] = cached.to(self.device)
        return tables

    def _loss_kwargs(self) -> dict[str, Any]:
        c = self.config
        kwargs = {"loss_type": c.loss_type, "beta": c.beta, "label_smoothing": c.label_smoothing,
                  "chunk_size": c.chunk_size}
        if c.loss_weights is not None:
            kwargs["loss_weights"] = c.loss_weights
        return kwargs

    def micro_batch(self, index: int) -> dict[str, torch.Tensor]:
        """This process's collated micro-batch ``index`` on the device, with its reference log-probs."""
        members = self.schedule.batch(index, self.accelerator.process_index)
        pairs = [self.train_pairs[k][row] for k, row in members]
        batch = {key: value.to(self.device) for key, value in
                 collate_pairs(pairs, [k for k, _ in members], self.pad_token_id).items()}
        if self.config.reference == "frozen":
            logps = self.frozen_reference(batch["input_ids"], batch["attention_mask"], batch["labels"])
            batch["ref_chosen_logps"], batch["ref_rejected_logps"] = logps[:len(pairs)], logps[len(pairs):]
        else:
            refs = torch.stack([self.reference_tables[f"train/{self.objective_names[k]}"][row] for k, row in members])
            batch["ref_chosen_logps"], batch["ref_rejected_logps"] = refs[:, 0], refs[:, 1]
        return batch

    def train(self) -> dict[str, Any]:
        config, accelerator = self.config, self.accelerator
        self.step = loop.resume(accelerator, config.output_dir, config.resume_from_checkpoint)
        output = Path(config.output_dir)
        metrics: dict[str, Any] = {}
        progress = tqdm(range(self.step, config.max_steps), initial=self.step, total=config.max_steps,
                        desc="MAH-DPO", disable=not accelerator.is_main_process)
        for _ in progress:
            metrics = self._optimizer_step()
            self.step += 1
            if accelerator.is_main_process and self.step % config.logging_steps == 0:
                progress.set_postfix(loss=f"{metrics['loss']:.4f}")
                loop.append_metrics(output, metrics)
            if self.step % config.save_steps == 0 or self.step == config.max_steps:
                self.save_checkpoint()
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            accelerator.unwrap_model(self.model).save_pretrained(output / "final")
        return metrics

    def _optimizer_step(self) -> dict[str, Any]:
        config, accelerator = self.config, self.accelerator
        totals: dict[str, torch.Tensor] = {}
        for a in range(config.gradient_accumulation_steps):
            batch = self.micro_batch(self.step * config.gradient_accumulation_steps + a)
            last = a == config.gradient_accumulation_steps - 1
            with contextlib.nullcontext() if last else accelerator.no_sync(self.model):
                out = self.model(**batch, **self._loss_kwargs())
                accelerator.backward(out.loss / config.gradient_accumulation_steps)
            for key, value in {"total_loss": out.loss.detach(), **out.metrics}.items():
                totals[key] = totals.get(key, 0) + value.detach() / config.gradient_accumulation_steps
        grad_norm = accelerator.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        reduced = {key: accelerator.reduce(value.float(), "mean") for key, value in totals.items()}
        metrics = {"step": self.step + 1, "loss": reduced.pop("total_loss").item(), "grad_norm": float(grad_norm),
                   "learning_rate": self.scheduler.get_last_lr()[0]}
        for key, value in reduced.items():
            for name, item in zip(self.objective_names, value.tolist()):
                metrics[f"{key}/{name}"] = item
        return metrics

    def save_checkpoint(self) -> Path:
        """``output_dir/checkpoint-<step>``: model, optimizer, scheduler and RNG states, and the step."""
        return loop.save_checkpoint(self.accelerator, self.config.output_dir, self.step, self.config.to_dict())

    @torch.no_grad()
    def evaluate(self, batch_size: int = 8) -> dict[str, dict[str, float]]:
        """Per held-out objective k: the preference accuracy and mean reward margin of head k on its own pairs
        (reward = ``beta · (logp_head - logp_ref)``), and the same of every other head (``head/<name>``)."""
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        results = {}
        for name, pairs in self.eval_pairs.items():
            reference = self.reference_tables[f"eval/{name}"]
            margins = []
            for start in range(0, len(pairs), batch_size):
                chunk = pairs[start:start + batch_size]
                batch = collate_pairs(chunk, [0] * len(chunk), self.pad_token_id)
                logps = model.sequence_logps(batch["input_ids"].to(self.device),
                                             batch["attention_mask"].to(self.device),
                                             batch["labels"].to(self.device))  # [K, 2b]
                ref = reference[start:start + len(chunk)]
                margins.append(self.config.beta * ((logps[:, :len(chunk)] - ref[:, 0]) - (logps[:, len(chunk):]
                                                                                        - ref[:, 1])))
            margin = torch.cat(margins, dim=1)  # [K, n]
            own = self.objective_names.index(name)
            results[name] = {"accuracy": (margin[own] > 0).float().mean().item(), "margin": margin[own].mean().item()}
            for k, head in enumerate(self.objective_names):
                results[name][f"accuracy/head_{head}"] = (margin[k] > 0).float().mean().item()
        model.train(was_training)
        return results
