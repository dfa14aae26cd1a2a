"""Configuration of a MAH-DPO run (TRL-style: one dataclass, loadable from JSON or YAML)."""

from __future__ import annotations

from dataclasses import dataclass, field

from moafast.methods._loop import TrainingConfig

REFERENCE_MODES = ("cache", "frozen", "none")


@dataclass(kw_only=True)
class MAHDPOConfig(TrainingConfig):
    """A MAH-DPO run. Defaults follow the paper's code where it has one (RMSprop, β = 0.1, head noise 1e-3,
    linear warm-up then constant learning rate, gradient norm clipped at 10).

    ``objectives`` maps each objective (one head each, in this order) to its preference file (``.json`` or
    ``.jsonl`` rows with prompt/chosen/rejected); ``eval_objectives`` likewise for held-out data.
    ``per_device_batch_size`` counts pairs per process per micro-batch and must be a multiple of the number of
    objectives; the global batch is ``per_device_batch_size x processes x gradient_accumulation_steps``.
    ``reference``: ``"cache"`` computes the reference log-probs once with the initial model and caches them in
    ``output_dir``; ``"frozen"`` keeps a frozen copy and scores every batch; ``"none"`` is reference-free.
    """

    objectives: dict[str, str]
    eval_objectives: dict[str, str] = field(default_factory=dict)
    beta: float = 0.1
    loss_type: str | list[str] = "sigmoid"
    loss_weights: list[float] | None = None
    label_smoothing: float = 0.0
    reference: str = "cache"
    warmup_steps: int = 150
    optimizer: str = "rmsprop"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.objectives:
            raise ValueError("objectives: expected at least one objective -> preference file")
        if self.reference not in REFERENCE_MODES:
            raise ValueError(f"reference: expected one of {REFERENCE_MODES}, got {self.reference!r}")
        if self.per_device_batch_size % len(self.objectives):
            raise ValueError(f"per_device_batch_size: {self.per_device_batch_size} pairs must be a multiple of the "
                             f"{len(self.objectives)} objectives (balanced batches); e.g. "
                             f"{len(self.objectives) * max(1, self.per_device_batch_size // len(self.objectives))}")
        if self.eval_objectives and set(self.eval_objectives) - set(self.objectives):
            raise ValueError(f"eval_objectives: {sorted(set(self.eval_objectives) - set(self.objectives))} are not "
                             f"training objectives {list(self.objectives)}")

    @property
    def num_heads(self) -> int:
        return len(self.objectives)
