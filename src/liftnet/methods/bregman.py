"""Lifted Bregman training (Wang and Benning; paper 001, JMLR 24(232), 2023).

Training problem (2), batch-first, averaged over the s samples of the batch::

    E(W; X) = 1/s sum_i [ sum_{l=0}^{L-1} L_{Psi_l}(x_{l+1,i}, W_l x_{l,i} + b_l)
                          + w_L L_out(y_i, W_L x_{L,i} + b_L) ] + rho/2 sum_l ||W_l||^2,

with x_0 = the input (clamped), L_Psi the Bregman penalty of the proximal activation sigma_l =
prox_{Psi_l} (:mod:`liftnet.proximal`; (3)), and L_out the penalty of the output activation with
the target clamped: softmax for ``ce`` (L_out is then the cross-entropy), identity for ``mse``
(1/2 ||y - u||^2), weighted by w_L = ``loss_weight`` (1 in paper 001).  Prediction: the plain
feed-forward pass.

Implicit stochastic gradient (the authors' method).  For each mini-batch, X re-initialised by the
feed-forward pass and W^k the current weights, ``inner`` iterations of proximal-gradient
descent on the proximal subproblem in (W, X_batch)::

    min_{W, X} E_batch(W; X) + 1/(2 tau) ||W - W^k||^2          (W = all (W_l, b_l))

each of ``alternations`` rounds being ``x_steps`` backward sweeps of proximal-gradient steps on
X_L, ..., X_1, then ``w_steps`` majorised steps on every (W_l, b_l) (independent across
layers)::

    X_l <- prox_{mu_l Phi_l}(X_l - mu_l [(sigma_{l+1}(U_l) - X_{l+1}) W_l - U_{l-1}]),
           mu_l = 1 / (c_l ||W_l||_2^2)
    (W_l, b_l) <- (W_l, b_l) - H_l^{-1} g_l,
           g_l = w_l/s (sigma(U_l) - X_{l+1})^T [X_l, 1] + ((W_l, b_l) - (W_l, b_l)^k) / tau
                 + rho (W_l, 0),
           H_l = w_l c_l / s [X_l, 1]^T [X_l, 1] + (1/tau + rho) I  (>= the Hessian of the block)

where U_l = X_l W_l^T + b_l, Phi_l = 1/2 ||.||^2 + Psi_l (its prox is prox_{mu/(1+mu) Psi}(v /
(1 + mu))), w_l the penalty's weight (``loss_weight`` on the output layer, 1 on the others),
and c_l is the Lipschitz constant of sigma_{l+1} (1; sigmoid 1/4; softmax 1/2), so
every step comes from a Lipschitz or majorisation bound and there is no learning rate to guess;
``tau`` is the proximal (implicit-step) parameter.  H_l^{-1} is applied in the row space (by
Woodbury) when the batch has fewer rows than inputs.  Stopping rule: ``x_steps`` sweeps and
``w_steps`` steps per round, or fewer when a loop moves its block by at most ``tol`` relative to
its size.  Every step is a descent step of the subproblem, so with the full data set as one
batch (``batch_size 0``, the deterministic
block-coordinate variant: X kept from step to step) E never increases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from ..activations import get_activation
from ..graph import Network, Params
from ..proximal import PROX_ACTIVATIONS, bregman_loss, prox_activations, prox_psi, sigma
from .base import (
    INIT_SCHEMES,
    Method,
    MethodState,
    check_choice,
    check_finite,
    check_int,
    check_positive,
    check_tol,
    count_samples,
    holds_batch,
    record_batch,
    start_params,
    sum_value,
)

#: Lipschitz constant of each activation (of grad Phi^*); a registered one: its ``slope``
_LIP = {"sigmoid": 0.25, "softmax": 0.5}


def _lip(name: str) -> float:
    if name in PROX_ACTIVATIONS:
        return _LIP.get(name, 1.0)
    return float(get_activation(name).slope)


def _sq_spectral(A: Tensor) -> float:
    """||A||_2^2, from the smaller of the two Gram matrices."""
    G = A @ A.T if A.shape[0] <= A.shape[1] else A.T @ A
    return float(torch.linalg.eigvalsh(G.double())[-1].clamp_min(0.0))


@dataclass
class BregmanState(MethodState):
    """Weights and the lifted activations X_1..X_L of the current batch."""

    acts: list[Tensor] = field(default_factory=list)
    inner: int = 0  # iterations of the last step


@dataclass(frozen=True)
class Bregman(Method):
    """Lifted Bregman network trained by implicit stochastic gradient (module docstring).

    Args:
        tau: proximal parameter of the implicit step, 1/(2 tau) ||W - W^k||^2.
        loss_weight: weight c of the output's penalty (the data term); 1 in paper 001.
        alternations: rounds of (X-steps, W-steps) per batch.
        x_steps: backward sweeps of proximal-gradient steps on X per round.
        w_steps: majorised gradient steps on each (W_l, b_l) per round.
        tol: stop a loop earlier when the relative change of its block is below ``tol``.
        rho: weight decay rho/2 ||W||^2.
        init: weight initialisation scheme.
        bias_init: initial biases; below zero (-0.3) so that the ReLU units do not start, and
            stay, in their linear regime (with 0 the trained network's hidden units act
            linearly on 62-81 % of the test pairs, with -0.3 on 19-53 %, same accuracy).
    """

    tau: float = 10.0
    loss_weight: float = 1.0
    alternations: int = 1
    x_steps: int = 10
    w_steps: int = 2
    tol: float = 1e-6
    rho: float = 1e-4
    init: str = "xavier"
    bias_init: float = -0.3

    key: ClassVar[str] = "bregman"
    monotone: ClassVar[bool] = True
    supports_distributed: ClassVar[bool] = True
    default_batch_size: ClassVar[int] = 100
    default_epochs: ClassVar[int] = 20

    def __post_init__(self) -> None:
        check_positive("tau", self.tau)
        check_positive("loss_weight", self.loss_weight)
        check_int("alternations", self.alternations, 1)
        check_int("x_steps", self.x_steps, 1)
        check_int("w_steps", self.w_steps, 1)
        check_tol("tol", self.tol)
        check_positive("rho", self.rho, allow_zero=True)
        check_choice("init", self.init, INIT_SCHEMES)
        check_finite("bias_init", self.bias_init)

    @classmethod
    def supported_activations(cls) -> tuple[str, ...]:
        """The proximal activations (:func:`liftnet.proximal.prox_activations`), softmax
        apart (an output activation)."""
        return tuple(a for a in prox_activations() if a != "softmax")

    def init_state(self, net: Network, X: Tensor, Y: Tensor, *,
                   generator: torch.Generator | None = None,
                   params: Params | None = None) -> BregmanState:
        self.check_network(net)
        params = start_params(net, X, params, generator=generator, scheme=self.init,
                              bias=self.bias_init)
        return BregmanState(params=params)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _act(net: Network, l: int) -> str:
        """Name of the activation applied to U_l (the output's: softmax or identity)."""
        if l == len(net.layers) - 1:
            return "softmax" if net.loss == "ce" else "identity"
        return net.layers[l].activation

    def objective(self, net: Network, state: BregmanState, X: Tensor, Y: Tensor) -> float:
        """E(W; X) of (2) on the batch (the state's lifted activations when they are of this
        batch, else the feed-forward ones)."""
        acts = state.acts
        if not acts or acts[0].shape[0] != X.shape[0] or not holds_batch(state, X):
            acts, _ = net.forward_all(state.params, X)
        xs = [X, *acts[: net.n_hidden], Y]
        data, reg = 0.0, 0.0
        for l, (layer, (W, b)) in enumerate(zip(net.layers, state.params, strict=True)):
            U = layer.forward(xs[l], W, b)
            c = self.loss_weight if l == len(net.layers) - 1 else 1.0
            data += c * float(bregman_loss(self._act(net, l), xs[l + 1], U).sum())
            reg += 0.5 * self.rho * float(torch.linalg.vector_norm(W)) ** 2
        data = sum_value(state, data, X.device)  # distributed: every process's samples
        return data / count_samples(state, X) + reg

    # ------------------------------------------------------------------ one step
    def step(self, net: Network, state: BregmanState, X: Tensor, Y: Tensor, *,
             new_batch: bool = True) -> BregmanState:
        L = len(net.layers)
        # records X; other samples than the last step's are a new batch, whatever the caller says
        new_batch = record_batch(state, X, new_batch)
        if new_batch or not state.acts or state.acts[0].shape[0] != X.shape[0]:
            state.acts = net.forward_all(state.params, X)[0][: net.n_hidden]
        s = count_samples(state, X)  # every process's samples in distributed training
        # the weight of each link's term and the Lipschitz constant of its gradient in U_l
        weights = [1.0] * (L - 1) + [self.loss_weight]
        lips = [_lip(self._act(net, l)) * weights[l] for l in range(L)]
        acts = [self._act(net, l) for l in range(L)]
        xs = [X, *state.acts, Y]
        # (W_l, b_l) as one (out, in + 1) block; the implicit step's centre W^k / tau
        Wa = [torch.cat([W, b[:, None]], 1) for W, b in state.params]
        centre = [w / self.tau for w in Wa]
        decay = []  # 1/tau + rho on the weights, 1/tau on the bias
        for w in Wa:
            d = torch.full((w.shape[1],), 1.0 / self.tau + self.rho, dtype=w.dtype,
                           device=w.device)
            d[-1] = 1.0 / self.tau
            decay.append(d)
        maps = [_sigma_fn(a) for a in acts]
        iters = 0
        for _ in range(self.alternations):
            iters += self._x_steps(xs, Wa, acts, weights, lips)
            # every (W_l, b_l), independently: majorised steps H^{-1} grad on the subproblem
            for l in range(L):
                Wa[l] = self._w_steps(xs[l], xs[l + 1], Wa[l], centre[l], decay[l], maps[l],
                                      weights[l] / s, lips[l] / s, state.reducer)
        state.params = [(w[:, :-1].contiguous(), w[:, -1].contiguous()) for w in Wa]
        state.acts = xs[1:-1]
        state.inner = iters
        state.step += 1
        return state

    def _x_steps(self, xs: list[Tensor], Wa: list[Tensor], acts: list[str],
                 weights: list[float], lips: list[float]) -> int:
        """X_L, ..., X_1 backward: up to ``x_steps`` sweeps of proximal-gradient steps (in
        place in ``xs``), stopping when a sweep moves X by at most ``tol`` relative to its
        size; returns the number of sweeps."""
        L = len(Wa)
        if L == 1:  # no hidden layer: no lifted activations to update
            return 0
        Ws = [w[:, :-1].contiguous() for w in Wa]
        bs = [w[:, -1].contiguous() for w in Wa]
        mus = [1.0 / max(lips[l] * _sq_spectral(Ws[l]), 1e-12) if l else 0.0 for l in range(L)]
        U0 = torch.addmm(bs[0], xs[0], Ws[0].T)  # fixed during the X-steps
        size = sum(float(torch.linalg.vector_norm(x)) ** 2 for x in xs[1:-1])
        maps = [_sigma_fn(a) for a in acts]
        it = 0
        while it < self.x_steps:
            it += 1
            moves = []
            for l in range(L - 1, 0, -1):
                # gradient of the smooth part: weight (sigma(U_l) - X_{l+1}) W_l - U_{l-1}
                G = maps[l](torch.addmm(bs[l], xs[l], Ws[l].T)).sub_(xs[l + 1])
                if weights[l] != 1.0:
                    G.mul_(weights[l])
                U = U0 if l == 1 else torch.addmm(bs[l - 1], xs[l - 1], Ws[l - 1].T)
                # prox_{mu Phi}(X - mu grad) = prox_{t Psi}((X - mu grad) / (1 + mu))
                mu = mus[l]
                V = torch.addmm(U, G, Ws[l], alpha=-1.0).mul_(mu / (1.0 + mu))
                new = prox_psi(acts[l - 1], V.add_(xs[l], alpha=1.0 / (1.0 + mu)),
                               mu / (1.0 + mu))
                moves.append(torch.dist(new, xs[l]))
                xs[l] = new
            if float(torch.stack(moves).square().sum()) <= self.tol**2 * max(size, 1e-24):
                break
        return it


    def _w_steps(self, X: Tensor, T: Tensor, Wa: Tensor, centre: Tensor, decay: Tensor,
                 act, weight: float, c: float, reducer=None) -> Tensor:
        """Up to ``w_steps`` majorised steps Wa <- Wa - H^{-1} g on the subproblem of one layer,
        g = weight (act(A Wa^T) - T)^T A + Wa * decay - centre its gradient (A = [X, 1], (s,
        n + 1); centre = Wa^k / tau) and H = c A^T A + d I >= its Hessian (act is 1-Lipschitz
        up to c; d = 1/tau + rho).  H^{-1} is factorised once per call: when s < n + 1 in the
        row space by Woodbury, H^{-1} g = (g - M A) / d with M = g A^T (d/c I + A A^T)^{-1}
        and g A^T = d (A Wa^T)^T - rho b 1^T - centre A^T + G^T A A^T, so that a step costs two
        products with A; else by a Cholesky factor of H.  Stops early when a step moves Wa by
        at most ``tol`` relative to it.  ``reducer``: distributed training (sums over samples
        of every process; the row-space form needs every row, so the Cholesky form)."""
        A = torch.nn.functional.pad(X, (0, 1), value=1.0)
        s, n1 = A.shape
        d = 1.0 / self.tau + self.rho
        small = s < n1 and reducer is None
        if small:
            K = A @ A.T
            chol = torch.linalg.cholesky(K + (d / c) * torch.eye(s, dtype=A.dtype,
                                                                   device=A.device))
            CA = centre @ A.T
        else:
            H = c * (A.T @ A)
            if reducer is not None:
                H = reducer.sum(H)
            H.diagonal().add_(d)
            chol = torch.linalg.cholesky(H)
        for j in range(self.w_steps):
            U = A @ Wa.T
            G = (act(U) - T).mul_(weight)  # (s, out); act may return U itself (identity)
            R = (Wa * decay).sub_(centre)
            if small:
                gAt = torch.addmm(U.T.mul(d).sub_(CA), G.T, K)
                gAt.sub_(Wa[:, -1:], alpha=self.rho)  # the bias has no weight decay
                M = torch.cholesky_solve(gAt.T, chol).T
                move = torch.addmm(R, G.T.sub(M), A).div_(d)
            else:
                GA = G.T @ A if reducer is None else reducer.sum(G.T @ A)
                move = torch.cholesky_solve(GA.add_(R).T, chol).T
            Wa = Wa - move
            if j < self.w_steps - 1 and float(torch.linalg.vector_norm(move)) \
                    <= self.tol * float(torch.linalg.vector_norm(Wa)):
                break
        return Wa


def _sigma_fn(name: str):
    """The activation as a callable, resolved once per step (relu: torch.relu)."""
    if name == "relu":
        return torch.relu
    return lambda U: sigma(name, U)
