"""Proximal block-coordinate descent of Zeng, Lau, Lin and Yao (ICML 2019) / Lau et al. (2018).

The two-splitting model, batch-first (``docs/notation.md``), summed over the N samples of the
batch as in the authors' code (so that gamma, rho and alpha keep their published meaning)::

    E = 1/2 ||V_L - Y||^2 + sum_{l=1}^{L} [ rho/2 ||U_l - V_{l-1} W_l^T - b_l||^2
                                             + gamma/2 ||V_l - sigma(U_l)||^2 ],   V_0 = X,

with sigma = ReLU on the hidden layers and the identity on the output layer (V_L ~ U_L), and a
squared loss on one-hot labels.  Every block is minimised exactly with a proximal term
alpha/2 ||. - ._old||^2 (on W, b, the hidden U and the output V_L; U_L and the hidden V have
none, as in the authors' code), one backward sweep per step::

    V_L <- (Y + gamma U_L + alpha V_L) / (1 + gamma + alpha)
    U_L <- (gamma V_L + rho (V_{L-1} W_L^T + b_L)) / (gamma + rho)
    for l = L, ..., 1:
        U_l   <- argmin_u gamma/2 (V_l - relu(u))^2 + (rho + alpha)/2 (u - c)^2,        (l < L)
                 c = (rho (V_{l-1} W_l^T + b_l) + alpha U_l) / (rho + alpha)  (three branches)
        W_l, b_l <- argmin rho/2 ||U_l - V_{l-1} W^T - b||^2 + alpha/2 ||(W, b) - (W, b)_old||^2
        V_{l-1} <- argmin_V rho/2 ||U_l - V W_l^T - b_l||^2 + gamma/2 ||V - relu(U_{l-1})||^2
                                                                                     (l > 1)

One deliberate difference from the authors' code: their bias update uses the weights from
before the W-update (a Jacobi step); here (W, b) are one block minimised jointly, so every
update is an exact block minimiser and E never increases in full-batch training.

Kernels: :func:`~liftnet.solvers.relu_prox`, :func:`~liftnet.solvers.linear_prox` and the
proximal ridge regression :func:`~liftnet.solvers.ridge_from_stats` (the inputs' Gram matrix is
computed once in full-batch mode).  Cost per step about 10 N d^2 flops per d x d layer.
Data-parallel training: the W-steps' statistics are all-reduced (``state.reducer``), every
other block is per sample, so the processes take the steps of one process on the union.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from ..graph import Network, Params
from ..solvers import gram_stats, linear_prox, relu_prox, ridge_from_stats
from .base import (
    OTHER_BATCH,
    Method,
    MethodState,
    check_finite,
    check_positive,
    count_samples,
    data_key,
    holds_batch,
    record_batch,
    start_params,
    sum_stats,
    sum_value,
)


def _sqnorm(T: Tensor) -> float:
    """||T||_F^2 in one pass without a squared copy."""
    return float(torch.linalg.vector_norm(T)) ** 2


_ROWS = 8192  # rows per chunk of the element-wise U-updates (bounds their temporaries)


@dataclass
class PBCDState(MethodState):
    """Weights, pre-activations U_1..U_L and activations V_1..V_L (V_L the output variable)."""

    U: list[Tensor] = field(default_factory=list)
    V: list[Tensor] = field(default_factory=list)
    gram_in: Tensor | None = None  # [X, 1]^T [X, 1] of the inputs in full-batch mode (cached)
    gram_key: tuple | None = None  # (data_key of X, reducer) that gram_in belongs to


@dataclass(frozen=True)
class PBCD(Method):
    """Proximal BCD for the two-splitting lifted model (Zeng et al. 2019), squared loss.

    Args:
        gamma: weight of the activation terms ||V_l - sigma(U_l)||^2 (authors: 1).
        rho: weight of the linear terms ||U_l - V_{l-1} W_l^T - b_l||^2 (authors: 1).
        alpha: proximal weight on every updated block but the hidden V (authors: 5).
        init_std: weights start as init_std * N(0, 1) (authors: 0.01).
        bias_init: initial biases (authors: 0.1).
    """

    gamma: float = 1.0
    rho: float = 1.0
    alpha: float = 5.0
    init_std: float = 0.01
    bias_init: float = 0.1

    key: ClassVar[str] = "pbcd"
    monotone: ClassVar[bool] = True
    losses: ClassVar[tuple[str, ...]] = ("mse",)
    hidden_activations: ClassVar[tuple[str, ...]] = ("relu",)
    default_batch_size: ClassVar[int] = 0
    default_epochs: ClassVar[int] = 50
    supports_distributed: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_positive("gamma", self.gamma)
        check_positive("rho", self.rho)
        check_positive("alpha", self.alpha, allow_zero=True)
        check_positive("init_std", self.init_std)
        check_finite("bias_init", self.bias_init)

    # ------------------------------------------------------------------ state
    def init_state(
        self,
        net: Network,
        X: Tensor,
        Y: Tensor,
        *,
        generator: torch.Generator | None = None,
        params: Params | None = None,
    ) -> PBCDState:
        self.check_network(net)
        params = start_params(net, X, params, generator=generator, scheme="normal",
                              bias=self.bias_init, std=self.init_std)
        return PBCDState(params=params)

    def _forward_init(self, net: Network, state: PBCDState, X: Tensor) -> None:
        """U, V re-initialised by a forward pass (a new batch), as the authors initialise."""
        acts, pre = net.forward_all(state.params, X)
        state.U = pre
        state.V = [*acts, pre[-1].clone()]

    # ------------------------------------------------------------------ objective
    def objective(self, net: Network, state: PBCDState, X: Tensor, Y: Tensor) -> float:
        """E of the module docstring divided by N (without the proximal terms; every
        process's samples in distributed training)."""
        n = X.shape[0]
        if not state.U:
            acts, pre = net.forward_all(state.params, X)
            U, V = pre, [*acts, pre[-1]]
        elif state.U[0].shape[0] != n:
            raise ValueError(
                f"the state's lifted variables hold {state.U[0].shape[0]} samples, the batch {n}"
            )
        elif not holds_batch(state, X):
            raise ValueError(OTHER_BATCH)
        else:
            U, V = state.U, state.V
        L = len(net.layers)
        total = 0.5 * _sqnorm(V[-1] - Y)
        for l, (W, b) in enumerate(state.params):
            x_in = X if l == 0 else V[l - 1]
            total += 0.5 * self.rho * _sqnorm(torch.addmm(b, x_in, W.T).sub_(U[l]))
            act = U[l] if l == L - 1 else torch.relu(U[l])
            total += 0.5 * self.gamma * _sqnorm(act.sub_(V[l]) if l < L - 1 else V[l] - act)
        return sum_value(state, total, X.device) / count_samples(state, X)

    # ------------------------------------------------------------------ one backward sweep
    def step(
        self, net: Network, state: PBCDState, X: Tensor, Y: Tensor, *, new_batch: bool = True
    ) -> PBCDState:
        # records X; other samples than the last step's are a new batch, whatever the caller says
        new_batch = record_batch(state, X, new_batch)
        if new_batch or not state.U or state.U[0].shape[0] != X.shape[0]:
            self._forward_init(net, state, X)
        key = (data_key(X), state.reducer)  # a Gram matrix summed over processes: other key
        if state.gram_key != key:
            state.gram_in, state.gram_key = None, key
        g, r, a = self.gamma, self.rho, self.alpha
        U, V, params = state.U, state.V, state.params
        L = len(net.layers)
        n = count_samples(state, X)  # every process's samples: one exchange per step
        # output layer: V_L, then U_L (both closed form, identity activation)
        V[-1] = (Y + g * U[-1] + a * V[-1]) / (1.0 + g + a)
        x_in = X if L == 1 else V[L - 2]
        W, b = params[-1]
        U[-1] = torch.addmm(b, x_in, W.T, beta=r, alpha=r).add_(V[-1], alpha=g).div_(g + r)
        for l in range(L - 1, -1, -1):
            x_in = X if l == 0 else V[l - 1]
            W, b = params[l]
            if l < L - 1:
                U[l] = self._u_update(x_in, W, b, U[l], V[l])
            # (W_l, b_l): proximal ridge regression, divided by rho (distributed training:
            # the statistics of every process's samples)
            cached = state.gram_in if l == 0 else None
            stats = sum_stats(state, gram_stats(x_in, U[l], xx=cached),
                              xx_summed=cached is not None, n=n)
            if l == 0:  # the inputs never change within a batch
                state.gram_in = stats.xx
            W, b = ridge_from_stats(stats, 0.0, W0=W, b0=b, gamma=a / r)
            params[l] = (W, b)
            if l > 0:  # V_{l-1}: least squares through W_l with the prior relu(U_{l-1})
                V[l - 1] = linear_prox(U[l], W, torch.relu(U[l - 1]), rho=r, gamma=g, b=b)
        state.step += 1
        return state

    def _u_update(self, x_in: Tensor, W: Tensor, b: Tensor, U_old: Tensor, V: Tensor) -> Tensor:
        """Hidden U_l: the three-branch proximal map of the ReLU term, chunked over rows."""
        g, r, a = self.gamma, self.rho, self.alpha
        out = torch.empty_like(U_old)
        for i in range(0, len(U_old), _ROWS):
            rows = slice(i, i + _ROWS)
            c = torch.addmm(b, x_in[rows], W.T).mul_(r).add_(U_old[rows], alpha=a).div_(r + a)
            relu_prox(V[rows], c, g, r + a, out=out[rows])
        return out
