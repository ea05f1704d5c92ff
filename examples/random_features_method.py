"""A user-defined training method, registered for ``fit``, the CLI and the estimators
(``docs/extending.md``): random hidden features with a ridge-regression output layer (an
"extreme learning machine").  Every hidden layer keeps its random initialisation; one step
fits the output layer to the targets by the shared ridge kernel in closed form.

    liftnet train --plugin examples/random_features_method.py --method random_features \\
        --arch 64-500-10 --alpha 1e-2
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from liftnet import Method, MethodState, register_method
from liftnet.graph import Network
from liftnet.methods.base import check_positive, start_params
from liftnet.solvers import ridge


@register_method
@dataclass(frozen=True)
class RandomFeatures(Method):
    """Random hidden layers, output layer by ridge regression on the whole batch.

    Args:
        alpha: the ridge weight, ``argmin_{W, b} 1/2 ||H W^T + b - Y||^2 + alpha/2 ||W||^2``
            with H the last hidden layer's features.
        init_std: standard deviation of the random hidden weights (None: xavier).
    """

    alpha: float = 1e-2
    init_std: float | None = None

    key: ClassVar[str] = "random_features"
    default_epochs: ClassVar[int] = 1
    monotone: ClassVar[bool] = True  # the same full-batch optimum at every step

    def __post_init__(self) -> None:
        check_positive("alpha", self.alpha)
        if self.init_std is not None:
            check_positive("init_std", self.init_std)

    def init_state(self, net: Network, X: Tensor, Y: Tensor, *,
                   generator: torch.Generator | None = None, params=None) -> MethodState:
        self.check_network(net)
        scheme = "xavier" if self.init_std is None else "normal"  # N(0, init_std^2)
        return MethodState(params=start_params(net, X, params, generator=generator,
                                               scheme=scheme, std=self.init_std))

    def _features(self, net: Network, state: MethodState, X: Tensor) -> Tensor:
        acts, _ = net.forward_all(state.params, X)
        return X if not acts else acts[-1]

    def step(self, net: Network, state: MethodState, X: Tensor, Y: Tensor, *,
             new_batch: bool = True) -> MethodState:
        H = self._features(net, state, X)
        state.params[-1] = ridge(H, Y, self.alpha)  # the output layer, closed form
        state.step += 1
        return state

    def objective(self, net: Network, state: MethodState, X: Tensor, Y: Tensor) -> float:
        W, b = state.params[-1]
        H = self._features(net, state, X)
        data = 0.5 * float(((H @ W.T + b - Y) ** 2).sum())
        return (data + 0.5 * self.alpha * float((W**2).sum())) / X.shape[0]
