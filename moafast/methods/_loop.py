"""Pieces every method's trainer shares: the accelerator, LoRA, optimizer and warm-up schedule, metrics
logging, checkpoints with exact resume."""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

# reward_fn(prompt, response) -> one reward per objective
RewardFunction = Callable[[str, str], Sequence[float]]

STATE_FILE = "trainer_state.json"
METRICS_FILE = "metrics.jsonl"
OPTIMIZERS = ("rmsprop", "adamw")


def make_accelerator():
    """An ``accelerate.Accelerator``; ``cpu=True`` where there is no GPU, so torchrun runs DDP over gloo."""
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available())


def load_reward_function(spec: str) -> RewardFunction:
    """``"package.module:function"`` -> that function (``reward_fn(prompt, response) -> [r_1, ..., r_J]``)."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ValueError(f"reward_function: expected 'package.module:function', got {spec!r}")
    function = getattr(importlib.import_module(module_name), name, None)
    if not callable(function):
        raise ValueError(f"reward_function: {spec!r} is not a callable in {module_name}")
    return function


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name_or_path)


def pad_token_id(tokenizer) -> int:
    """The tokenizer's pad id, else its EOS id (padding is masked out of every loss)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


class ConfigFile:
    """``from_file`` (JSON or YAML, unknown keys listed in the error) and ``to_dict`` for config dataclasses."""

    @classmethod
    def from_file(cls, path: str | Path):
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(path.read_text())
        else:
            values = json.loads(path.read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown {cls.__name__} keys {unknown}; known keys: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(kw_only=True)
class TrainingConfig(ConfigFile):
    """The fields every method's trainer reads; each method's config adds its own (and may change defaults).

    ``per_device_batch_size`` counts examples (pairs, scored rows) per process per micro-batch; the global
    batch is ``per_device_batch_size x processes x gradient_accumulation_steps``. ``lora``: a
    ``peft.LoraConfig`` keyword dict for the backbone. ``resume_from_checkpoint``: a checkpoint directory or
    ``"latest"`` in ``output_dir``.
    """

    model_name_or_path: str
    output_dir: str
    tokenizer_name_or_path: str | None = None
    head_init_noise: float = 1e-3
    head_init_seed: int = 42
    per_device_batch_size: int = 2
    gradient_accumulation_steps: int = 1
    max_steps: int = 100
    learning_rate: float = 5e-7
    warmup_steps: int = 0
    optimizer: str = "adamw"
    max_grad_norm: float = 10.0
    max_length: int = 512
    max_prompt_length: int = 256
    chunk_size: int | None = None
    save_steps: int = 50
    logging_steps: int = 1
    seed: int = 0
    resume_from_checkpoint: str | None = None
    lora: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("max_steps", "gradient_accumulation_steps", "save_steps", "logging_steps",
                     "per_device_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if self.max_prompt_length >= self.max_length:
            raise ValueError(f"max_prompt_length ({self.max_prompt_length}) must be below max_length "
                             f"({self.max_length})")


def apply_lora(backbone: torch.nn.Module, lora: dict[str, Any] | None) -> torch.nn.Module:
    """``peft.get_peft_model(backbone, LoraConfig(**lora))``, or the backbone itself without ``lora``."""
    if not lora:
        return backbone
    from peft import LoraConfig, get_peft_model

    return get_peft_model(backbone, LoraConfig(**lora))


def make_optimizer(model: torch.nn.Module, name: str, learning_rate: float) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {name!r}")
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer_class = torch.optim.RMSprop if name == "rmsprop" else torch.optim.AdamW
    return optimizer_class(trainable, lr=learning_rate)


def warmup_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_steps`` optimizer steps, then constant."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / (warmup_steps + 1)))


def append_metrics(output_dir: str | Path, metrics: dict[str, Any]) -> None:
    path = Path(output_dir)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / METRICS_FILE, "a") as f:
        f.write(json.dumps(metrics) + "\n")


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The ``checkpoint-<step>`` directory with the highest step that holds a trainer state, if any."""
    candidates = [p for p in Path(output_dir).glob("checkpoint-*") if (p / STATE_FILE).exists()]
    return max(candidates, key=lambda p: int(p.name.split("-")[1]), default=None)


def save_checkpoint(accelerator, output_dir: str | Path, step: int, config: dict[str, Any]) -> Path:
    """``output_dir/checkpoint-<step>``: model, optimizer, registered objects and RNG states, and the step."""
    directory = Path(output_dir) / f"checkpoint-{step}"
    accelerator.save_state(str(directory))
    if accelerator.is_main_process:
        (directory / STATE_FILE).write_text(json.dumps({"step": step, "config": config}))
    accelerator.wait_for_everyone()
    return directory


def resume(accelerator, output_dir: str | Path, target: str | None) -> int:
    """The step to continue from: 0 without ``target``; ``"latest"`` finds the newest checkpoint (0 if none)."""
    if not target:
        return 0
    directory = latest_checkpoint(output_dir) if target == "latest" else Path(target)
    if directory is None:
        return 0
    if not (directory / STATE_FILE).exists():
        raise ValueError(f"resume_from_checkpoint: {directory} has no {STATE_FILE}; expected a checkpoint-<step> "
                         f"directory written by a moafast trainer")
    accelerator.load_state(str(directory))
    return json.loads((directory / STATE_FILE).read_text())["step"]
