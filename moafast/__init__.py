"""moafast: fast, exact kernels and methods for multi-objective alignment of language models.

Layers: compiled kernels (``moafast._C``, no libtorch) -> torch.library ops (:mod:`moafast.ops`) ->
plain-PyTorch references (:mod:`moafast.reference`) used by the tests -> losses, the decoding loop
(:func:`moafast.generate`), integrations (:mod:`moafast.integrations`) and methods (:mod:`moafast.methods`).
"""

from importlib.metadata import PackageNotFoundError, version

import torch  # noqa: F401  (import before the extension so both share one OpenMP runtime)

from moafast import ops, reference
from moafast.generation import TiltedGeneration, generate

try:
    __version__ = version("moafast")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["TiltedGeneration", "generate", "ops", "reference", "__version__"]
