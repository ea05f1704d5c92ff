"""The contract shared by every training method.

A method is a dataclass of hyperparameters (validated when it is made) with three verbs:

* ``init_state(net, X, Y, generator=...)`` -> a state record holding every iterate;
* ``step(state, X, Y, new_batch=...)`` -> the state after one update on the batch ``(X, Y)``
  (for lifted methods: one block-coordinate sweep; ``new_batch`` says the lifted activation
  variables must be re-initialised by a forward pass because ``X`` is a batch they have not seen);
* ``objective(state, X, Y)`` -> the value of the method's training objective on that batch.

``fit`` in :mod:`liftnet.training` drives them, and so do the CLI, the estimator, the
benchmarks and the contract tests, without knowing any method's insides.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..graph import Network, Params


@dataclass
class MethodState:
    """Iterates common to all methods: the network parameters and a step counter."""

    params: Params
    step: int = 0


@dataclass(frozen=True)
class Method(ABC):
    """Base class of training methods; subclasses are frozen dataclasses of hyperparameters."""

    key: ClassVar[str] = ""
    supports_conv: ClassVar[bool] = False
    losses: ClassVar[tuple[str, ...]] = ("ce", "mse")
    #: activations the method can train on hidden layers (None: any registered activation)
    hidden_activations: ClassVar[tuple[str, ...] | None] = None
    #: default batch size of the method; 0 means the full data set (the lifted papers' setting)
    default_batch_size: ClassVar[int] = 0
    #: default number of epochs (passes over the training set)
    default_epochs: ClassVar[int] = 10

    def check_network(self, net: Network) -> None:
        """Capabilities checked in one place, with errors that name the class."""
        name = type(self).__name__
        if net.loss not in self.losses:
            raise ValueError(f"{name} does not support loss {net.loss!r} (supports {self.losses})")
        for l, layer in enumerate(net.layers[:-1]):
            if getattr(layer, "kind", "dense") != "dense" and not self.supports_conv:
                raise ValueError(f"{name} does not support {type(layer).__name__} layers")
            acts = self.hidden_activations
            if acts is not None and layer.activation not in acts:
                raise ValueError(
                    f"{name} does not support activation {layer.activation!r} on hidden layer "
                    f"{l + 1} (supports {', '.join(acts)})"
                )

    def hyperparameters(self) -> dict[str, Any]:
        """Every hyperparameter of the method, for results files and ``get_params``."""
        return dataclasses.asdict(self)

    @abstractmethod
    def init_state(
        self, net: Network, X: Tensor, Y: Tensor, *, generator: torch.Generator | None = None
    ) -> MethodState:
        """Initial iterates for training ``net`` on inputs X (N, d_0) and targets Y (N, d_out)."""

    @abstractmethod
    def step(
        self, net: Network, state: MethodState, X: Tensor, Y: Tensor, *, new_batch: bool = True
    ) -> MethodState:
        """One update on the batch ``(X, Y)``; returns the new state."""

    @abstractmethod
    def objective(self, net: Network, state: MethodState, X: Tensor, Y: Tensor) -> float:
        """The method's training objective at ``state`` on the batch ``(X, Y)``."""


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """Raise ``ValueError(f"{name} must be > 0, got {value}")`` (or >= 0)."""
    bad = value < 0 if allow_zero else value <= 0
    if bad or value != value:  # value != value catches NaN
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
