"""Training methods, one file each; the file name is the registry key and the CLI's --method."""

from __future__ import annotations

from .backprop import Backprop, BackpropState
from .base import Method, MethodState
from .lifted import Lifted, LiftedState, lifted_predict

METHODS: dict[str, type[Method]] = {cls.key: cls for cls in (Lifted, Backprop)}


def get_method(key: str, **hyperparameters) -> Method:
    """The method registered under ``key``, made with ``hyperparameters`` (validated)."""
    try:
        cls = METHODS[key]
    except KeyError:
        raise ValueError(f"unknown method {key!r}; choose one of {', '.join(METHODS)}") from None
    return cls(**hyperparameters)


__all__ = [
    "METHODS", "Backprop", "BackpropState", "Lifted", "LiftedState", "Method", "MethodState",
    "get_method", "lifted_predict",
]
