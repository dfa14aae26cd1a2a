"""HaM (Mukherjee et al., arXiv 2412.05469): K policies as LM heads on a shared backbone, trained to maximise
the hypervolume of their per-objective reward-weighted log-likelihoods on scored data, exactly (moafast's
hypervolume op and its gradient) or by random scalarisation. Layers: :mod:`.objective`, :mod:`.model`,
:mod:`.data`, :mod:`.trainer`, :mod:`.config`."""

from moafast.methods.ham.config import HaMConfig
from moafast.methods.ham.model import HaMModel, HaMOutput
from moafast.methods.ham.objective import normalise, objective_matrix, scalarized_hypervolume
from moafast.methods.ham.trainer import HaMTrainer, plot_front

__all__ = ["HaMConfig", "HaMModel", "HaMOutput", "HaMTrainer", "normalise", "objective_matrix", "plot_front",
           "scalarized_hypervolume"]
