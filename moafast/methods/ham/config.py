"""Configuration of a HaM run (one dataclass, loadable from JSON or YAML)."""

from __future__ import annotations

from dataclasses import dataclass

from moafast.methods._loop import TrainingConfig

HV_MODES = ("exact", "scalarization")


@dataclass(kw_only=True)
class HaMConfig(TrainingConfig):
    """HaM: ``num_heads`` policies (LM heads on one backbone) trained to maximise the hypervolume of their
    per-objective scores on scored data.

    ``data``/``eval_data``: ``.json``/``.jsonl`` rows ``{"prompt", "response", "rewards": [r_1, ..., r_J]}``
    with one reward per name in ``objectives``. Head k's score on objective j is the reward-weighted
    log-likelihood ``L_kj = mean_b r_bj log p_k(y_b | x_b)`` (``length_normalise``: per token); the K points
    are normalised per objective over the heads of the batch into ``[margin, 1 + margin]`` (reference at 0,
    scales detached) and the loss is ``-HV``: exact (``hv_mode="exact"``, moafast's hypervolume op) or the
    random-scalarisation estimate with ``num_directions`` directions (large K).
    """

    objectives: list[str]
    data: str
    num_heads: int = 5
    eval_data: str | None = None
    hv_mode: str = "exact"
    num_directions: int = 256
    margin: float = 0.1
    length_normalise: bool = True
    head_init_noise: float = 1e-2
    per_device_batch_size: int = 8
    learning_rate: float = 1e-5

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.objectives) < 1:
            raise ValueError("objectives: expected at least one objective name (one reward per row each)")
        if self.num_heads < 1:
            raise ValueError(f"num_heads: expected >= 1 policy head, got {self.num_heads}")
        if self.hv_mode not in HV_MODES:
            raise ValueError(f"hv_mode: expected one of {HV_MODES}, got {self.hv_mode!r}")
        if not self.margin > 0:
            raise ValueError(f"margin: expected > 0 (the normalised points must dominate the reference), got {self.margin}")
        if self.num_directions < 1:
            raise ValueError(f"num_directions: expected >= 1, got {self.num_directions}")
