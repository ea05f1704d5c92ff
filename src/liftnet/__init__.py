"""liftnet: train neural networks without back-propagation, by lifted block-coordinate descent."""

from __future__ import annotations

__version__ = "0.1.0"

from .activations import Activation, register_activation  # noqa: E402
from .augment import RandomShift  # noqa: E402
from .graph import Dense, Network, mlp, network, parse_arch  # noqa: E402
from .methods import (  # noqa: E402
    METHODS,
    Backprop,
    Lifted,
    Method,
    MethodState,
    get_method,
    lifted_predict,
    register_method,
)
from .results import load_model, save_model  # noqa: E402
from .training import FitResult, fit  # noqa: E402
from .transfer import export_program, from_torch, to_torch  # noqa: E402

__all__ = [
    "METHODS",
    "Activation",
    "Backprop",
    "Dense",
    "FitResult",
    "Lifted",
    "Method",
    "MethodState",
    "Network",
    "RandomShift",
    "__version__",
    "export_program",
    "fit",
    "from_torch",
    "get_method",
    "lifted_predict",
    "load_model",
    "mlp",
    "network",
    "parse_arch",
    "register_activation",
    "register_method",
    "save_model",
    "to_torch",
]
