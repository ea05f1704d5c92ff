"""Back-propagation baseline: the ordinary network of the same architecture trained by a
``torch.optim`` optimizer on the same batches, behind the same ``Method`` interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..graph import Network, Params
from .base import (
    INIT_SCHEMES,
    Method,
    MethodState,
    check_choice,
    check_finite,
    check_positive,
    start_params,
)

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
#: hidden activations whose derivative is zero wherever it exists: no gradient passes them
FLAT = ("sign",)


@dataclass
class BackpropState(MethodState):
    """Parameters (leaf tensors with gradients) and the optimizer holding their moments."""

    optimizer: torch.optim.Optimizer | None = None


@dataclass(frozen=True)
class Backprop(Method):
    """Mini-batch gradient training of the feed-forward network.

    Args:
        optimizer: ``sgd``, ``momentum`` (SGD with momentum 0.9), ``rmsprop`` or ``adam``.
        lr: learning rate.
        reduction: the loss over a batch is its ``mean`` or its ``sum`` (TensorFlow 1's
            ``tf.nn.softmax_cross_entropy_with_logits`` summed by ``reduce_sum``; paper 004's
            learning rates 1e-5 and 1e-6 only make sense for ``sum``).
        init: ``xavier``, ``normal`` (N(0, 0.1)) or ``variance_scaling`` (He normal).
        bias_init: initial biases (paper 004 Table 1: 0.1).
        weight_decay: l2 penalty added to the loss, ``weight_decay * sum ||W||^2``.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    reduction: str = "mean"
    init: str = "xavier"
    bias_init: float = 0.0
    weight_decay: float = 0.0

    key: ClassVar[str] = "backprop"
    supports_conv: ClassVar[bool] = True
    default_batch_size: ClassVar[int] = 100
    default_epochs: ClassVar[int] = 10

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("reduction", self.reduction, ("mean", "sum"))
        check_positive("lr", self.lr)
        check_positive("weight_decay", self.weight_decay, allow_zero=True)
        check_finite("bias_init", self.bias_init)
        check_choice("init", self.init, INIT_SCHEMES)

    def check_network(self, net: Network) -> None:
        for l, layer in enumerate(net.layers[:-1]):
            if layer.activation in FLAT:
                raise ValueError(
                    f"Backprop cannot train through activation {layer.activation!r} on hidden "
                    f"layer {l + 1}: its derivative is zero wherever it exists, so no gradient "
                    "reaches the layers below")
        super().check_network(net)

    def init_state(
        self,
        net: Network,
        X: Tensor,
        Y: Tensor,
        *,
        generator: torch.Generator | None = None,
        params: Params | None = None,
    ) -> BackpropState:
        self.check_network(net)
        return self.state_from_params(start_params(
            net, X, params, generator=generator, scheme=self.init, bias=self.bias_init
        ))

    def state_from_params(self, params: Params) -> BackpropState:
        """A fresh state starting from given weights (e.g. lifted weights as initialisation)."""
        leaves = [(W.detach().clone().requires_grad_(), b.detach().clone().requires_grad_())
                  for W, b in params]
        flat = [t for pair in leaves for t in pair]
        if self.optimizer == "sgd":
            opt = torch.optim.SGD(flat, lr=self.lr)
        elif self.optimizer == "momentum":
            opt = torch.optim.SGD(flat, lr=self.lr, momentum=0.9)
        elif self.optimizer == "rmsprop":
            opt = torch.optim.RMSprop(flat, lr=self.lr)
        else:
            opt = torch.optim.Adam(flat, lr=self.lr)
        return BackpropState(params=leaves, optimizer=opt)

    def _loss(self, net: Network, params: Params, X: Tensor, Y: Tensor) -> Tensor:
        out = net.forward(params, X)
        if net.loss == "ce":
            per = torch.nn.functional.cross_entropy(out, Y, reduction="none")
        else:
            per = ((out - Y) ** 2).sum(dim=1)
        loss = per.sum() if self.reduction == "sum" else per.mean()
        if self.weight_decay > 0:
            loss = loss + self.weight_decay * sum((W**2).sum() for W, _ in params)
        return loss

    def step(
        self, net: Network, state: BackpropState, X: Tensor, Y: Tensor, *, new_batch: bool = True
    ) -> BackpropState:
        if state.optimizer is None:
            raise ValueError("Backprop.step needs a state from init_state or state_from_params")
        for group in state.optimizer.param_groups:  # this method's lr (e.g. a fit schedule's)
            group["lr"] = self.lr
        state.optimizer.zero_grad(set_to_none=True)
        self._loss(net, state.params, X, Y).backward()
        state.optimizer.step()
        state.step += 1
        return state

    def objective(self, net: Network, state: BackpropState, X: Tensor, Y: Tensor) -> float:
        with torch.no_grad():
            return float(self._loss(net, state.params, X, Y))
