"""MAH-DPO (Shen et al., arXiv 2510.01167): one LM head per objective on a shared backbone, trained with the
DPO loss of each objective's preference pairs on its own head; at inference the heads are mixed with user
weights. Layers: :mod:`.model` (the K-head model, ``generate(weights=...)``), :mod:`.data` (balanced
per-objective batches), :mod:`.reference` (cached reference log-probs), :mod:`.trainer` (accelerate, DDP,
checkpoints), :mod:`.config`."""

from moafast.methods.mah_dpo.config import MAHDPOConfig
from moafast.methods.mah_dpo.data import BalancedSchedule, collate_pairs, load_preference_rows, tokenize_rows
from moafast.methods.mah_dpo.model import HeadMixture, MultiHeadCausalLM
from moafast.methods._loop import latest_checkpoint
from moafast.methods.mah_dpo.trainer import MAHDPOTrainer

__all__ = [
    "BalancedSchedule", "HeadMixture", "MAHDPOConfig", "MAHDPOTrainer", "MultiHeadCausalLM", "collate_pairs",
    "latest_checkpoint", "load_preference_rows", "tokenize_rows",
]
