"""Training methods, one file each; the file name is the registry key and the CLI's --method."""

from __future__ import annotations

import dataclasses

from .admm import ADMM, ADMMState
from .backprop import Backprop, BackpropState
from .base import Method, MethodState
from .bregman import Bregman, BregmanState
from .convex import Convex, ConvexState
from .fenchel import Fenchel, FenchelState
from .lifted import Lifted, LiftedState, lifted_predict
from .pbcd import PBCD, PBCDState

METHODS: dict[str, type[Method]] = {
    cls.key: cls for cls in (Lifted, Backprop, ADMM, PBCD, Fenchel, Bregman, Convex)
}


def register_method(cls: type[Method], *, replace: bool = False) -> type[Method]:
    """Make the method class ``cls`` available by its ``key`` to :func:`get_method`,
    ``liftnet.fit``, the CLI's ``--method`` (with its hyperparameters as flags) and the
    estimators.  ``cls`` is a frozen dataclass of hyperparameters subclassing :class:`Method`
    (``init_state``, ``step``, ``objective``; capabilities as class attributes), like the
    built-in ones.  Usable as a class decorator."""
    if not (isinstance(cls, type) and issubclass(cls, Method) and dataclasses.is_dataclass(cls)):
        raise ValueError(
            f"register_method needs a dataclass subclass of liftnet.Method, got {cls!r}")
    key = cls.key
    if not isinstance(key, str) or not key.isidentifier():
        raise ValueError(f"a method needs a key that is a Python identifier, got {key!r}")
    if key in METHODS and METHODS[key] is not cls and not replace:
        raise ValueError(f"method {key!r} is already registered; pass replace=True to replace it")
    METHODS[key] = cls
    return cls


def get_method(key: str, **hyperparameters) -> Method:
    """The method registered under ``key``, made with ``hyperparameters`` (validated)."""
    if not isinstance(key, str):
        raise TypeError(f"method key must be a string such as 'fenchel', got "
                        f"{type(key).__name__} {key!r}")
    try:
        cls = METHODS[key]
    except KeyError:
        raise ValueError(f"unknown method {key!r}; choose one of {', '.join(METHODS)}") from None
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(hyperparameters) - known)
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a hyperparameter of method {key!r}; its "
                         f"hyperparameters are {', '.join(sorted(known))}")
    return cls(**hyperparameters)


__all__ = [
    "ADMM", "ADMMState", "Bregman", "BregmanState", "Convex", "ConvexState", "METHODS",
    "Fenchel", "FenchelState",
    "PBCD", "Backprop", "BackpropState", "Lifted", "LiftedState",
    "Method", "MethodState", "PBCDState", "get_method", "lifted_predict", "register_method",
]
