"""liftnet: train neural networks without back-propagation, by lifted block-coordinate descent."""

from __future__ import annotations

__version__ = "0.1.0"

from .graph import Dense, Network, mlp, parse_arch  # noqa: E402
from .methods import METHODS, Backprop, Lifted, Method, get_method, lifted_predict  # noqa: E402
from .results import load_model, save_model  # noqa: E402
from .training import FitResult, fit  # noqa: E402
from .transfer import from_torch, to_torch  # noqa: E402

__all__ = [
    "METHODS",
    "Backprop",
    "Dense",
    "FitResult",
    "Lifted",
    "Method",
    "Network",
    "__version__",
    "fit",
    "from_torch",
    "get_method",
    "lifted_predict",
    "load_model",
    "mlp",
    "parse_arch",
    "save_model",
    "to_torch",
]
