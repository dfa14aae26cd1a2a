"""Configuration of a HaM run (one dataclass, loadable from JSON or YAML)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moafast.methods._loop import OPTIMIZERS, ConfigFile

HV_MODES = ("exact", "scalarization")


@dataclass
class HaMConfig(ConfigFile):
    """HaM: ``num_heads`` policies (LM heads on one backbone) trained to maximise the hypervolume of their
    per-objective scores on scored data.

    ``data``/``eval_data``: ``.json``/``.jsonl`` rows ``{"prompt", "response", "rewards": [r_1, ..., r_J]}``
    with one reward per name in ``objectives``. Head k's score on objective j is the reward-weighted
    log-likelihood ``L_kj = mean_b r_bj log p_k(y_b | x_b)`` (``length_normalise``: per token); the K points
    are normalised per objective over the heads of the batch into ``[margin, 1 + margin]`` (reference at 0,
    scales detached) and the loss is ``-HV``: exact (``hv_mode="exact"``, moafast's hypervolume op) or the
    random-scalarisation estimate with ``num_directions`` directions (large K).
    """

    model_name_or_path: str
    objectives: list[str]
    data: str
    output_dir: str
    num_heads: int = 5
    tokenizer_name_or_path: str | None = None
    eval_data: str | None = None
    hv_mode: str = "exact"
    num_directions: int = 256
    margin: float = 0.1
    length_normalise: bool = True
    head_init_noise: float = 1e-2
    head_init_seed: int = 42
    per_device_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_steps: int = 100
    learning_rate: float = 1e-5
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
        if len(self.objectives) < 1:
            raise ValueError("objectives: expected at least one objective name (one reward per row each)")
        if self.num_heads < 1:
            raise ValueError(f"num_heads: expected >= 1 policy head, got {self.num_heads}")
        if self.hv_mode not in HV_MODES:
            raise ValueError(f"hv_mode: expected one of {HV_MODES}, got {self.hv_mode!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not self.margin > 0:
            raise ValueError(f"margin: expected > 0 (the normalised points must dominate the reference), got {self.margin}")
        for name in ("max_steps", "gradient_accumulation_steps", "save_steps", "logging_steps", "per_device_batch_size",
                     "num_directions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
