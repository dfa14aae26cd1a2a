"""MAVIS (Carleton et al., arXiv 2508.13415): value-guided multi-objective decoding. One value model per
objective is trained on trees of sampled responses (outcome rewards at the leaves, means above, KL-penalised
soft values in later rounds); decoding tilts the base policy's top-k candidates by the weighted values.
Layers: :mod:`.value_model`, :mod:`.tree`, :mod:`.decoding`, :mod:`.trainer`, :mod:`.config`."""

from moafast.methods.mavis.config import MavisConfig
from moafast.methods.mavis.decoding import mavis_generate
from moafast.methods.mavis.trainer import MavisValueTrainer, value_model_path
from moafast.methods.mavis.tree import TreeNode, label_trees, sample_trees
from moafast.methods.mavis.value_model import CandidateScorer, ValueModel

__all__ = ["CandidateScorer", "MavisConfig", "MavisValueTrainer", "TreeNode", "ValueModel", "label_trees",
           "mavis_generate", "sample_trees", "value_model_path"]
