"""Configuration of MAVIS value training (one dataclass, loadable from JSON or YAML)."""

from __future__ import annotations

from dataclasses import dataclass

from moafast.methods._loop import TrainingConfig


@dataclass(kw_only=True)
class MavisConfig(TrainingConfig):
    """MAVIS: one value model per objective, trained on trees of responses sampled from the policy.

    ``model_name_or_path`` is the base policy; ``value_model_name_or_path`` (default: the policy) the causal LM
    whose transformer body, with a scalar head, becomes each objective's value model (``lora`` applies to it;
    it must share the policy's tokenizer). ``prompts``: ``.json``/``.jsonl`` rows ``{"prompt": ...}``.
    ``reward_function``: ``"package.module:function"``, ``reward_fn(prompt, response) -> [r_1, ..., r_J]``.

    Round 0 samples trees from the policy: ``root_children`` continuations of each prompt, then ``children`` per
    node for ``num_layers`` layers (segment lengths drawn as in MAVIS, the last layer runs to the end), leaves
    scored by the reward function and internal nodes labelled with the mean of their children. Round r >= 1
    samples each objective's trees from the MAVIS policy of that objective's round r-1 value model
    (``decode_beta``) and labels ``v(n) - kl_penalty * mean over the leaves below n of sum_t log pi/pi_ref``.
    Each (round, objective) trains its value model (from the previous round's) with MSE for ``epochs`` epochs,
    at most ``max_steps`` optimizer steps.
    """

    objectives: list[str]
    prompts: str
    reward_function: str
    value_model_name_or_path: str | None = None
    rounds: int = 1
    kl_penalty: float = 0.02
    decode_beta: float = 1.0
    root_children: int = 4
    children: int = 2
    num_layers: int = 3
    max_new_tokens: int = 32
    top_k: int = 40
    temperature: float = 1.0
    epochs: int = 2
    max_steps: int = 1_000_000
    per_device_batch_size: int = 8
    learning_rate: float = 1e-4
    sampling_batch_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.objectives) < 1:
            raise ValueError("objectives: expected at least one objective name (one reward each)")
        for name in ("rounds", "root_children", "children", "num_layers", "max_new_tokens", "top_k", "epochs",
                     "sampling_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if self.num_layers > self.max_new_tokens:
            raise ValueError(f"num_layers ({self.num_layers}) must not exceed max_new_tokens ({self.max_new_tokens}): "
                             "every layer adds at least one token")
        if not self.temperature > 0:
            raise ValueError(f"temperature: expected > 0, got {self.temperature}")
        if self.kl_penalty < 0:
            raise ValueError(f"kl_penalty: expected >= 0, got {self.kl_penalty}")
