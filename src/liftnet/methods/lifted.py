"""The classic lifted network of Askari, Negiar, Sambharya and El Ghaoui (paper 004).

Training problem (10)/(11) with the output lifted as a variable, as in section 6.2's (14)/(15),
batch-first and normalised by the number of samples N (see ``docs/notation.md``)::

    F = (1/N) [ loss(Y, X_{L+1}) + sum_{l=1}^{L+1} lam_l D_l(X_{l-1} W_{l-1}^T + b_{l-1}, X_l) ]
        + rho * sum_l ||W_l||^2 (+ gamma * sum_l ||(W_l, b_l) - (W_l, b_l)_prev||^2 in mini-batches)

    s.t. X_l in C_l (ReLU: X_l >= 0; hard tanh: |X_l| <= 1; ...), X_0 = X,
         X_{L+1} on the simplex with loss = -sum Y log X_{L+1} for ``ce`` (11), (15),
         X_{L+1} free with loss = ||X_{L+1} - Y||^2 for ``mse`` (5), (14).

The divergences D_l of the hidden layers are the JC divergences of section 4 for activations
that project onto a box C (ReLU, hard tanh, piecewise sigmoid, identity):

* ``penalty="squared"``: D(u, v) = ||v - u||^2, the literal form of (5) and (11).  Its W-step
  pulls negative pre-activations up to zero, and in practice the hidden units drift into the
  linear regime (over 98% active on MNIST) and the network ends near a linear classifier.
* ``penalty="shifted"`` (default): D(u, v) = ||v - u||^2 - ||u - sigma(u)||^2, the same
  divergence plus a function of u alone, which section 4 allows ("we may add a term that is not
  a function of the variable being optimized ... to improve the overall structure").  It is
  still >= 0 and zero exactly at v = sigma(u), but no longer penalises inactive units.  For
  ReLU it equals 2 B(v, u) of the Fenchel lifted network (paper 003 (5)).  It is convex in u with
  curvature at most 2, so each block step minimises the majoriser ||u - T||^2 with
  T = v + u0 - sigma(u0) at the current pre-activation u0 (majorisation-minimisation): the
  X-steps stay box least squares and the W-steps ridge regressions, and F never increases.

One lambda for every link (``lam``): paper 004 section 3 shows that rescaling X_l -> sqrt(lam_l)
X_l and W_l -> sqrt(lam_{l+1} / lam_l) W_l (with rho_l changed accordingly) turns any per-layer
choice into equal lambdas for positively homogeneous activations such as ReLU.  ``lam_out``
optionally gives the output link its own weight (the simplex output cannot be rescaled).

Block-coordinate descent (section 6), one sweep per ``step``: the output X_{L+1} by (14) (closed
form for ``mse``, the dual bisection of Appendix A for ``ce``), then the hidden X_L, ..., X_1 by
(13) (box-constrained least squares with one shared matrix), then every (W_l, b_l) by a ridge
regression (section 6.1).  Every block is minimised exactly (the box QP to a stated tolerance,
never accepting a worse point; for ``shifted`` its majoriser), so F never increases within a
batch (full-batch mode: across epochs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from ..activations import ACTIVATIONS, get_activation
from ..graph import Network, Params
from ..solvers import (
    apg,
    box_qp,
    gram_stats,
    lipschitz_sym,
    project_simplex,
    ridge_from_stats,
    simplex_ce_prox,
)
from .base import (
    INIT_SCHEMES,
    OTHER_BATCH,
    Method,
    MethodState,
    check_choice,
    check_int,
    check_positive,
    check_tol,
    count_samples,
    data_key,
    holds_batch,
    record_batch,
    start_params,
    sum_samples,
    sum_stats,
)

#: the built-in activations that project onto a box (:func:`box_activations`: all of them)
BOX_ACTIVATIONS = ("relu", "hardtanh", "piecewise_sigmoid", "identity")
PENALTIES = ("shifted", "squared")


def box_activations() -> tuple[str, ...]:
    """The registered activations the lifted network trains on hidden layers: those that are
    the projection onto a box (``Activation.box``; built in: ReLU, hard tanh, the piecewise
    sigmoid, the identity), whose JC divergence ||v - u||^2 + indicator(box) section 4 uses."""
    return tuple(name for name, act in ACTIVATIONS.items() if act.box is not None)


@dataclass
class LiftedState(MethodState):
    """Iterates of the lifted BCD: weights, hidden lifted variables X_1..X_L, output X_{L+1}."""

    acts: list[Tensor] = field(default_factory=list)
    out: Tensor | None = None
    prev: Params | None = None  # (W, b) at the start of the batch, for the proximal term
    gram_in: Tensor | None = None  # [X, 1]^T [X, 1] of the inputs in full-batch mode (cached)
    gram_key: tuple | None = None  # (data_key of X, reducer) that gram_in belongs to
    inner_iterations: int = 0  # box-QP iterations spent in the last step (diagnostics)


@dataclass(frozen=True)
class Lifted(Method):
    """Classic lifted network trained by block-coordinate descent (paper 004, section 6).

    Args:
        lam: weight lambda of every activation penalty (one lambda, paper 004 section 3).
        lam_out: weight of the output link (default: ``lam``).
        rho: weight of the l2 penalty rho sum_l ||W_l||^2 on the 1/N-normalised objective
            (module docstring): the paper's rho on its summed objective divided by N (its
            section 7 uses 1e-3 with batches of 100, i.e. 1e-5 here).
        gamma: proximal weight on (W, b) towards the previous batch's values; used in
            mini-batch training, and when a trained state goes on with new data (``fit(...,
            new_data=True)``, the estimators' ``partial_fit``: each call's samples are a new
            batch); ignored within a full-batch fit.
        sweeps: BCD sweeps per batch (per epoch in full-batch mode).
        penalty: hidden-layer divergence, ``shifted`` or ``squared`` (module docstring).
        init: initialisation of the weights (``xavier``, ``normal``, ``variance_scaling``).
        tol: relative projected-gradient tolerance of the X-step box QPs.
        max_inner: iteration cap of each X-step box QP.
    """

    lam: float = 1.0
    lam_out: float | None = None
    rho: float = 1e-3
    gamma: float = 0.01
    sweeps: int = 1
    penalty: str = "shifted"
    init: str = "xavier"
    tol: float = 1e-4
    max_inner: int = 300

    key: ClassVar[str] = "lifted"
    monotone: ClassVar[bool] = True
    supports_distributed: ClassVar[bool] = True
    default_batch_size: ClassVar[int] = 0
    default_epochs: ClassVar[int] = 40
    batch_only: ClassVar[tuple[str, ...]] = ("gamma",)

    def __post_init__(self) -> None:
        check_positive("lam", self.lam)
        if self.lam_out is not None:
            check_positive("lam_out", self.lam_out)
        check_positive("rho", self.rho, allow_zero=True)
        check_positive("gamma", self.gamma, allow_zero=True)
        check_tol("tol", self.tol)
        check_choice("penalty", self.penalty, PENALTIES)
        check_int("sweeps", self.sweeps, 1)
        check_int("max_inner", self.max_inner, 1)
        check_choice("init", self.init, INIT_SCHEMES)

    @classmethod
    def supported_activations(cls) -> tuple[str, ...]:
        """The projections onto a box (:func:`box_activations`)."""
        return box_activations()

    def lams(self, net: Network) -> list[float]:
        """Penalty weights [lam_1, ..., lam_{L+1}] of the links X_l ~ sigma(U_{l-1})."""
        out = self.lam if self.lam_out is None else self.lam_out
        return [self.lam] * net.n_hidden + [out]

    # ------------------------------------------------------------------ state
    def init_state(
        self,
        net: Network,
        X: Tensor,
        Y: Tensor,
        *,
        generator: torch.Generator | None = None,
        params: Params | None = None,
    ) -> LiftedState:
        self.check_network(net)
        return LiftedState(params=start_params(net, X, params, generator=generator,
                                               scheme=self.init))

    def _forward_init(self, net: Network, state: LiftedState, X: Tensor) -> None:
        """Lifted variables re-initialised by a forward pass (new batch)."""
        acts, pre = net.forward_all(state.params, X)
        state.acts = acts
        state.out = project_simplex(pre[-1]) if net.loss == "ce" else pre[-1].clone()

    # ------------------------------------------------------------------ objective
    def objective(self, net: Network, state: LiftedState, X: Tensor, Y: Tensor) -> float:
        """F of paper 004 (10)/(11), normalised by N (module docstring; in distributed
        training N and the sums over samples are those of every process)."""
        n = X.shape[0]
        if state.out is None:  # not stepped yet: the lifted variables a forward pass would give
            acts, pre = net.forward_all(state.params, X)
            out = project_simplex(pre[-1]) if net.loss == "ce" else pre[-1]
        elif state.out.shape[0] != n:
            raise ValueError(
                f"the state's lifted variables hold {state.out.shape[0]} samples, the batch {n}"
            )
        elif not holds_batch(state, X):
            raise ValueError(OTHER_BATCH)
        else:
            acts, out = state.acts, state.out
        xs = [X, *acts, out]
        lams = self.lams(net)
        penalty = 0.0
        for l, (layer, (W, b)) in enumerate(zip(net.layers, state.params, strict=True)):
            U = layer.forward(xs[l], W, b)
            d = ((xs[l + 1] - U) ** 2).sum()
            if self._shifted(net, l):  # - dist(U, C)^2: zero penalty at X_{l+1} = sigma(U)
                d = d - ((U - _box(net, l, U)) ** 2).sum()
            penalty = penalty + lams[l] * d
        loss = _data_loss(net.loss, Y, out)
        reg = sum((W**2).sum() for W, _ in state.params)
        prox = 0.0
        if state.prev is not None and self.gamma > 0:
            prox = sum(
                ((W - W0) ** 2).sum() + ((b - b0) ** 2).sum()
                for (W, b), (W0, b0) in zip(state.params, state.prev, strict=True)
            )
        data = sum_samples(state, loss + penalty)
        return float(data / count_samples(state, X) + self.rho * reg + self.gamma * prox)

    def probabilities(self, outputs: Tensor) -> Tensor:
        """The outputs' projection onto the simplex: the output layer is fitted to points of
        the simplex (15), Appendix A, so its outputs span about [0, 1] and a softmax of them
        would be nearly uniform."""
        return project_simplex(outputs)

    # ------------------------------------------------------------------ one BCD sweep
    def step(
        self, net: Network, state: LiftedState, X: Tensor, Y: Tensor, *, new_batch: bool = True
    ) -> LiftedState:
        # records X; other samples than the last step's are a new batch, whatever the caller says
        new_batch = record_batch(state, X, new_batch)
        if new_batch or state.out is None or state.out.shape[0] != X.shape[0]:
            self._forward_init(net, state, X)
            state.prev = None
            if new_batch and state.step > 0 and self.gamma > 0:
                state.prev = [(W.clone(), b.clone()) for W, b in state.params]
        key = (data_key(X), state.reducer)  # a Gram matrix summed over processes: other key
        if state.gram_key != key:
            state.gram_in, state.gram_key = None, key
        inner = 0
        for _ in range(self.sweeps):
            inner += self._x_steps(net, state, X, Y)
            self._w_steps(net, state, X)
        state.inner_iterations = inner
        state.step += 1
        return state

    def _x_steps(self, net: Network, state: LiftedState, X: Tensor, Y: Tensor) -> int:
        params, acts = state.params, state.acts
        lams = self.lams(net)
        L = net.n_hidden
        # (14): output variable X_{L+1} = argmin_Z loss(Y, Z) + lam ||Z - X_L W_L^T - b_L||^2
        x_last = acts[-1] if L > 0 else X
        U = net.layers[-1].forward(x_last, *params[-1])
        if net.loss == "ce":
            state.out = simplex_ce_prox(Y, U, lams[L])  # (15), Appendix A
        else:
            state.out = (Y + lams[L] * U) / (1.0 + lams[L])
        # (13), backward l = L..1: X_l = argmin_{Z in C_l} ||X_{l+1} - Z W_l^T - b_l||^2
        #                                                    + ||Z - X_{l-1} W_{l-1}^T - b_{l-1}||^2
        iterations = 0
        for l in range(L, 0, -1):
            W, b = params[l]
            x_next = self._target(net, l, acts[l - 1], state.out if l == L else acts[l], W, b)
            x_prev = X if l == 1 else acts[l - 2]
            U_prev = net.layers[l - 1].forward(x_prev, *params[l - 1])
            H = lams[l] * (W.T @ W)
            H.diagonal().add_(lams[l - 1])
            Q = torch.addmm(U_prev, x_next - b, W, beta=lams[l - 1], alpha=lams[l])
            lower, upper = get_activation(net.layers[l - 1].activation).box
            res = box_qp(
                H, Q, acts[l - 1], lower=lower, upper=upper, tol=self.tol, max_iter=self.max_inner
            )
            acts[l - 1] = res.Z
            iterations += res.iterations
        return iterations

    def _w_steps(self, net: Network, state: LiftedState, X: Tensor) -> None:
        # Section 6.1: (W_l, b_l) = argmin lam/N ||X_l W^T + b - X_{l+1}||^2 + rho ||W||^2
        #                                  (+ gamma ||(W, b) - (W, b)_prev||^2)
        # i.e. a ridge regression with alpha = rho N / lam (and proximal weight gamma N / lam).
        # Distributed training: the statistics and N are sums over every process's samples.
        n = count_samples(state, X)
        xs = [X, *state.acts, state.out]
        lams = self.lams(net)
        new: Params = []
        for l in range(len(net.layers)):
            target = self._target(net, l, xs[l], xs[l + 1], *state.params[l])
            cached = state.gram_in if l == 0 else None
            stats = sum_stats(state, gram_stats(xs[l], target, xx=cached),
                              xx_summed=cached is not None, n=n)
            if l == 0:  # the inputs do not change while the lifted variables persist
                state.gram_in = stats.xx
            alpha = self.rho * n / lams[l]
            if state.prev is not None:
                W0, b0 = state.prev[l]
                W, b = ridge_from_stats(
                    stats, alpha, W0=W0, b0=b0, gamma=self.gamma * n / lams[l]
                )
            else:
                W, b = ridge_from_stats(stats, alpha)
            new.append((W, b))
        state.params = new


    def _shifted(self, net: Network, l: int) -> bool:
        """Whether link l (X_l -> X_{l+1}) uses the shifted divergence."""
        return self.penalty == "shifted" and l < net.n_hidden

    def _target(
        self, net: Network, l: int, x_in: Tensor, x_next: Tensor, W: Tensor, b: Tensor
    ) -> Tensor:
        """Least-squares target of link l at the current iterate.

        ``squared``: X_{l+1} itself.  ``shifted``: the divergence is
        D(u, v) = ||v - u||^2 - ||u - sigma(u)||^2 (paper 004 section 4: a function of u may be
        added to a JC divergence); it is convex in u with curvature <= 2, so the parabola
        ||u - T||^2 with T = v + u0 - sigma(u0) majorises it up to a constant, tightly at the
        current pre-activation u0.  Minimising the majoriser keeps the X- and W-steps a box
        least-squares and a ridge regression and never increases the objective (MM).
        """
        if not self._shifted(net, l):
            return x_next
        U = net.layers[l].forward(x_in, W, b)
        return x_next + (U - _box(net, l, U))


def _box(net: Network, l: int, U: Tensor) -> Tensor:
    """sigma(U) for the box activation of layer l (projection onto its box)."""
    lower, upper = get_activation(net.layers[l].activation).box
    return U if lower is None and upper is None else U.clamp(lower, upper)


def _data_loss(loss: str, Y: Tensor, Z: Tensor) -> Tensor:
    """-sum Y log Z (``ce``, Z on the simplex; 0 log 0 = 0) or ||Z - Y||^2 (``mse``).  log Z is
    clamped at the dtype's smallest positive number: a zero output at a label (possible at the
    feed-forward start, never after an output step, whose Z > 0 wherever Y > 0) counts
    -log(tiny) (708 in float64, 87 in float32) instead of +inf, so that the first objective of
    a run is a number to compare the next ones with."""
    if loss == "ce":
        mask = Y > 0
        return -(Y[mask] * torch.log(Z[mask].clamp_min(torch.finfo(Z.dtype).tiny))).sum()
    return ((Z - Y) ** 2).sum()


def lifted_predict(
    net: Network,
    params: Params,
    X: Tensor,
    *,
    penalty: str = "shifted",
    lams: list[float] | None = None,
    tol: float = 1e-6,
    max_iter: int = 2000,
) -> tuple[Tensor, list[Tensor]]:
    """Lifted prediction rule (paper 004 (12)) with the weights fixed.

    Solves, for every test point (rows of X), the convex problem::

        min_{x_1..x_L in C, y}  sum_{l=1}^{L} lam_l D(x_{l-1} W_{l-1}^T + b_{l-1}, x_l)
                                + lam_{L+1} ||y - x_L W_L^T - b_L||^2 + loss(y, .)

    with D(u, v) = ||v - u||^2 (``squared``) or ||v - u||^2 - ||u - sigma(u)||^2 (``shifted``),
    where the output y is free (``mse``: its term vanishes) or on the simplex (``ce``: the term
    is the squared distance of the logits to the simplex); ``lams`` are the weights of the links
    (``Lifted.lams(net)``; default all equal, when lambda factors out).  Solved jointly over all
    layers by accelerated projected gradient, started at the feed-forward point.  With
    ``squared`` the problem is jointly convex (JCR) and this is its minimum; with ``shifted`` it
    is convex in each x_l but not jointly when L >= 2, and the result is a stationary point no
    worse than the start.  With ``shifted`` every hidden term is zero at the feed-forward point,
    so the rule returns the feed-forward outputs for ``mse``.

    Returns:
        ``(outputs, hidden)``: the outputs (N, d_out) — ``y`` on the simplex for ``ce``, the
        logits for ``mse`` — and the optimal hidden variables [x_1..x_L].
    """
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")
    if not all(layer.plain for layer in net.layers):
        raise ValueError(f"the lifted prediction rule is for dense networks without pooling; "
                         f"{net.spec} is not one")
    net.check_params(params)
    if not isinstance(X, Tensor) or X.ndim != 2 or X.shape[1] != net.sizes[0]:
        shape = tuple(X.shape) if isinstance(X, Tensor) else type(X).__name__
        raise ValueError(f"X must be a tensor of shape (N, {net.sizes[0]}), got {shape}")
    L = net.n_hidden
    acts, pre = net.forward_all(params, X)
    if L == 0:
        out = project_simplex(pre[-1]) if net.loss == "ce" else pre[-1]
        return out, []
    boxes = [get_activation(layer.activation).box for layer in net.layers[:-1]]
    shift = 1.0 if penalty == "shifted" else 0.0
    lams = [1.0] * (L + 1) if lams is None else list(lams)
    if len(lams) != L + 1:
        raise ValueError(f"expected {L + 1} link weights lams, got {len(lams)}")
    try:
        ok = all(math.isfinite(float(v)) and float(v) > 0 for v in lams)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"link weights lams must be finite numbers > 0, got {lams}")

    def grad(xs: list[Tensor]) -> list[Tensor]:
        chain = [X, *xs]
        g = [torch.zeros_like(x) for x in xs]
        for l in range(L):
            W = params[l][0]
            U = net.layers[l].forward(chain[l], *params[l])
            g[l] += 2 * lams[l] * (xs[l] - U)  # d/dv of D(u, v)
            if l > 0:  # d/du of D(u, v) = 2 (u - shift (u - sigma(u)) - v), times du/dx = W
                P = U - shift * (U - _box(net, l, U))
                g[l - 1] += 2 * lams[l] * (P - xs[l]) @ W
        U = net.layers[-1].forward(xs[-1], *params[-1])
        if net.loss == "ce":  # d/dx_L of dist(U, simplex)^2 = 2 (U - P(U)) W_L
            g[-1] += 2 * lams[L] * (U - project_simplex(U)) @ params[-1][0]
        return g

    def project(xs: list[Tensor]) -> list[Tensor]:
        return [x if lo is None and hi is None else x.clamp(lo, hi)
                for x, (lo, hi) in zip(xs, boxes, strict=True)]

    lip = 2.0 * max(lams) * sum(1.0 + lipschitz_sym(W.T @ W) for W, _ in params)
    res = apg(grad, project, acts, lip, tol=tol, max_iter=max_iter)
    xs = res.x
    U = net.layers[-1].forward(xs[-1], *params[-1])
    out = project_simplex(U) if net.loss == "ce" else U
    return out, xs
