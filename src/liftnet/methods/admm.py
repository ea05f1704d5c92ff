"""ADMM of Taylor, Burmeister, Xu, Singh, Patel and Goldstein (ICML 2016), squared loss.

Auxiliary variables: pre-activations z_l (N, d_l) and activations a_l = relu(z_l) of the hidden
layers, a_0 = X, and a Lagrange multiplier lam (N, d_L) on the output constraint only.  With the
constraints relaxed by quadratic penalties, batch-first (``docs/notation.md``) and summed over
the N samples, the augmented Lagrangian is::

    A = 1/2 ||z_L - Y||^2 + <lam, r_L> + beta/2 ||r_L||^2,   r_L = z_L - a_{L-1} W_L^T - b_L,
        + sum_{l<L} [ beta/2 ||z_l - a_{l-1} W_l^T - b_l||^2 + gamma/2 ||a_l - relu(z_l)||^2 ]
        + rho/2 sum_l ||W_l||^2                  (``rho``, beyond the paper; default 0).

One step is one iteration of Algorithm 1 of the paper, a forward sweep of closed forms::

    for l = 1, ..., L-1:
        W_l <- z_l pinv(a_{l-1})                  (least squares, with the bias as a column of 1s;
                                                  ridge with alpha = rho / beta when rho > 0)
        a_l <- (beta W_{l+1}^T W_{l+1} + gamma I)^-1 (beta W_{l+1}^T z_{l+1} + gamma relu(z_l))
        z_l <- argmin_z gamma/2 ||a_l - relu(z)||^2 + beta/2 ||z - W_l a_{l-1}||^2  (entry-wise)
    W_L <- z_L pinv(a_{L-1})
    z_L <- argmin_z 1/2 ||z - Y||^2 + <lam, z> + beta/2 ||z - W_L a_{L-1}||^2
         = (Y - lam + beta m) / (1 + beta),  m = a_{L-1} W_L^T + b_L
    lam <- lam + beta (z_L - m)                   (after ``warmup`` sweeps without it)

The multiplier (``multiplier``), and what makes it stable:

* ``"bregman"``: Algorithm 1 as printed: lam accumulates but enters the z_L-update only (the
  paper calls it a Bregman iteration).  Its fixed points are any z_L = m with lam = Y - m, and
  at such a point the z_L-update returns z_L = m whatever Y is: the accumulated multiplier
  absorbs the residual of the data term instead of driving the weights to reduce it.  Measured
  (MNIST 784-300-10, ``benchmarks/admm_multiplier.py``): the augmented Lagrangian rises steadily
  after the warm-up (0.092 at iteration 20, 0.142 at 100, 0.172 at 400): the "diverging loss"
  reported by users who fixed the public reimplementation; test accuracy still creeps up
  (0.836 at 100, 0.857 at 400).
* ``"assign"``: lam = beta (z_L - m), not accumulated (the public reimplementation).  lam only
  damps the z_L-update; the Lagrangian falls (0.0084 at 100, 0.0021 at 300); 0.844 at 300.
* ``"augmented"`` (default): lam accumulates AND enters every block that the output
  constraint couples, as in a true ADMM on the augmented Lagrangian A: the W_L-update fits
  z_L + lam / beta and the a_{L-1}-update targets z_L + lam / beta.  At its fixed points the
  multiplier is lam = Y - z_L and the W_L-condition gives lam^T [a_{L-1}, 1] = 0, the normal
  equations of the data term: the labels are fitted, not absorbed.  Measured: the Lagrangian
  falls (0.0073 at 100, 0.0021 at 300), test 0.818 at 100 and 0.835 at 300.

So what makes the accumulated multiplier stable is to put it into every block it couples.  In
the same runs ``augmented`` and ``assign`` both jump once, within one iteration, to about 0.91
test accuracy (iteration 307 for ``augmented``; 0.892 and 0.908 at 400), while the Lagrangian
spikes and then falls again; the least-squares W-steps switch there from a Cholesky solve to the
pseudo-inverse of a numerically singular Gram matrix of the hidden activations (diagnosed in
``benchmarks/README.md``), so the final accuracy depends on that cut-off.  A weight decay
``rho`` > 0 (beyond the paper) makes every W-step a ridge regression and does from the first
iteration what the cut-off did late: on MNIST rho = 100 gives 0.938 after 100 iterations
against 0.817 (benchmarks/README.md).
The benchmark ``benchmarks/admm_multiplier.py`` runs the three side by side.

Data-parallel training (the paper's own setting: its ADMM splits the samples over cores): every
block but the W-steps is per sample, and a W-step needs only the sums [a, 1]^T [a, 1] and
[a, 1]^T z over the samples, which :func:`liftnet.distributed.fit_distributed` all-reduces
(``state.reducer``), so every process solves the least-squares problem of the union.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from ..graph import Network, Params
from ..solvers import gram_stats, linear_prox, relu_prox, ridge_from_stats, ridge_operator
from .base import (
    INIT_SCHEMES,
    OTHER_BATCH,
    Method,
    MethodState,
    check_choice,
    check_int,
    check_positive,
    count_samples,
    data_key,
    holds_batch,
    record_batch,
    start_params,
    sum_samples,
    sum_stats,
    sum_value,
)

MULTIPLIERS = ("augmented", "bregman", "assign")


@dataclass
class ADMMState(MethodState):
    """Weights, hidden pre-activations z_1..z_{L-1} and activations a_1..a_{L-1}, output z_L,
    the multiplier lam on the output constraint."""

    z: list[Tensor] = field(default_factory=list)
    a: list[Tensor] = field(default_factory=list)
    lam: Tensor | None = None
    solve_in: Tensor | None = None  # least-squares operator of the inputs X (cached)
    solve_key: tuple | None = None  # (data_key of X, alpha, bias, reducer) of solve_in


@dataclass(frozen=True)
class ADMM(Method):
    """ADMM of Taylor et al. (2016) on the full data set, squared loss, ReLU hidden layers.

    Args:
        beta: weight of the linear constraints z_l = a_{l-1} W_l^T + b_l (paper code: 5).
        gamma: weight of the activation constraints a_l = relu(z_l) (paper code: 5).
        warmup: iterations without multiplier updates at the start (paper: 5 to 10).
        multiplier: ``augmented`` (accumulated, in every coupled block; stable), ``bregman``
            (accumulated, z_L-update only: Algorithm 1 as printed) or ``assign`` (the public
            reimplementation); see the module docstring.
        bias: fit biases (the paper's networks have none: ``bias=False``).
        rho: weight decay rho/2 ||W_l||^2 of every layer, added to A (beyond the paper;
            0: the paper's least squares W_l <- z_l pinv(a_{l-1})).  Each W-step is then a
            ridge regression with alpha = rho / beta, which keeps the late, badly conditioned
            W-steps well posed (module docstring).
        init: initial weights (``xavier``, ``normal``, ``variance_scaling``); the auxiliary
            variables start from the forward pass.
    """

    beta: float = 5.0
    gamma: float = 5.0
    warmup: int = 10
    multiplier: str = "augmented"
    bias: bool = True
    rho: float = 0.0
    init: str = "xavier"

    key: ClassVar[str] = "admm"
    losses: ClassVar[tuple[str, ...]] = ("mse",)
    hidden_activations: ClassVar[tuple[str, ...]] = ("relu",)
    default_batch_size: ClassVar[int] = 0
    default_epochs: ClassVar[int] = 400
    full_batch_only: ClassVar[bool] = True
    supports_distributed: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_positive("beta", self.beta)
        check_positive("gamma", self.gamma)
        check_positive("rho", self.rho, allow_zero=True)
        check_int("warmup", self.warmup, 0)
        check_choice("multiplier", self.multiplier, MULTIPLIERS)
        if not isinstance(self.bias, bool):
            raise ValueError(f"bias must be True or False, got {self.bias!r}")
        check_choice("init", self.init, INIT_SCHEMES)

    # ------------------------------------------------------------------ state
    def init_state(
        self,
        net: Network,
        X: Tensor,
        Y: Tensor,
        *,
        generator: torch.Generator | None = None,
        params: Params | None = None,
    ) -> ADMMState:
        self.check_network(net)
        params = start_params(net, X, params, generator=generator, scheme=self.init)
        if not self.bias:
            params = [(W, torch.zeros_like(b)) for W, b in params]
        return ADMMState(params=params)

    def _forward_init(self, net: Network, state: ADMMState, X: Tensor) -> None:
        acts, pre = net.forward_all(state.params, X)
        state.z = pre
        state.a = acts
        state.lam = torch.zeros_like(pre[-1])

    # ------------------------------------------------------------------ objective
    def objective(self, net: Network, state: ADMMState, X: Tensor, Y: Tensor) -> float:
        """The augmented Lagrangian A of the module docstring divided by N (every process's
        samples in distributed training)."""
        n = X.shape[0]
        if not state.z:
            acts, pre = net.forward_all(state.params, X)
            z, a, lam = pre, acts, torch.zeros_like(pre[-1])
        elif state.z[0].shape[0] != n:
            raise ValueError(
                f"the state's auxiliary variables hold {state.z[0].shape[0]} samples, "
                f"the batch {n}"
            )
        elif not holds_batch(state, X):
            raise ValueError(OTHER_BATCH)
        else:
            z, a, lam = state.z, state.a, state.lam
        L = len(net.layers)
        total = 0.0
        for l, (W, b) in enumerate(state.params):
            r = z[l] - torch.addmm(b, X if l == 0 else a[l - 1], W.T)
            total += 0.5 * self.beta * float((r * r).sum())
            if l < L - 1:
                total += 0.5 * self.gamma * float(((a[l] - torch.relu(z[l])) ** 2).sum())
            else:
                total += float((lam * r).sum()) + 0.5 * float(((z[l] - Y) ** 2).sum())
        reg = sum(0.5 * self.rho * float(torch.linalg.vector_norm(W)) ** 2
                  for W, _ in state.params)
        return (sum_value(state, total, X.device) + reg) / count_samples(state, X)

    # ------------------------------------------------------------------ Algorithm 1
    def step(
        self, net: Network, state: ADMMState, X: Tensor, Y: Tensor, *, new_batch: bool = True
    ) -> ADMMState:
        # records X; other samples than the last step's are a new batch, whatever the caller says
        new_batch = record_batch(state, X, new_batch)
        if new_batch or not state.z or state.z[0].shape[0] != X.shape[0]:
            self._forward_init(net, state, X)
        # the operator depends on the data, the ridge weight, the intercept and (distributed:
        # a Gram matrix summed over processes) the reducer
        key = (data_key(X), self.rho / self.beta, self.bias, state.reducer)
        if state.solve_key != key:
            state.solve_in, state.solve_key = None, key
        beta, gamma = self.beta, self.gamma
        z, a, lam, params = state.z, state.a, state.lam, state.params
        L = len(net.layers)
        coupled = self.multiplier == "augmented"
        n = count_samples(state, X)  # every process's samples: one exchange per step
        for l in range(L):
            a_in = X if l == 0 else a[l - 1]
            # W_l <- z_l pinv(a_{l-1}) (a ridge regression with alpha = rho / beta when rho > 0);
            # the output layer fits z_L + lam/beta in augmented mode
            # (distributed training: the statistics are summed over every process's samples)
            target = z[l] + lam / beta if (l == L - 1 and coupled) else z[l]
            if l == 0:  # the inputs never change: their (ridge) operator is computed once
                if state.solve_in is None:
                    xx = sum_samples(state, gram_stats(X, X[:, :1]).xx)
                    state.solve_in = ridge_operator(xx, self.rho / beta,
                                                    fit_intercept=self.bias)
                xt = X.T @ target
                if self.bias:
                    xt = torch.cat([xt, target.sum(dim=0, keepdim=True)])
                params[0] = _apply(state.solve_in, sum_samples(state, xt), self.bias)
            else:
                stats = sum_stats(state, gram_stats(a_in, target), n=n)
                params[l] = ridge_from_stats(stats, self.rho / beta, fit_intercept=self.bias)
            if l == L - 1:
                break
            # a_l <- (beta W^T W + gamma I)^-1 (beta W^T (z_{l+1} - b) + gamma relu(z_l))
            W_next, b_next = params[l + 1]
            t_next = z[l + 1] + lam / beta if (l + 1 == L - 1 and coupled) else z[l + 1]
            a[l] = linear_prox(t_next, W_next, torch.relu(z[l]), rho=beta, gamma=gamma,
                               b=b_next)
            # z_l <- argmin gamma/2 (a_l - relu(z))^2 + beta/2 (z - m)^2, m = a_{l-1} W_l^T + b_l
            m = torch.addmm(params[l][1], a_in, params[l][0].T)
            z[l] = relu_prox(a[l], m, gamma, beta)
        # output: z_L = (Y - lam + beta m) / (1 + beta), then the multiplier
        W, b = params[-1]
        m = torch.addmm(b, X if L == 1 else a[L - 2], W.T)
        z[-1] = (Y - lam + beta * m) / (1.0 + beta)
        if state.step >= self.warmup:
            if self.multiplier == "assign":
                state.lam = beta * (z[-1] - m)
            else:
                state.lam = lam + beta * (z[-1] - m)
        state.step += 1
        return state


def _apply(M: Tensor, xt: Tensor, bias: bool) -> tuple[Tensor, Tensor]:
    """(W, b) = least squares (ridge when M was made with alpha > 0) of T on X through the
    cached operator M (``ridge_operator``) from ``xt`` = [X, 1]^T T (X^T T without the bias),
    shape (d_in (+ 1), d_out)."""
    theta = (M @ xt.to(torch.float64)).to(xt.dtype)
    d = xt.shape[0] - 1 if bias else xt.shape[0]
    W = theta[:d].T.contiguous()
    b = theta[d].clone() if bias else xt.new_zeros(xt.shape[1])
    return W, b
