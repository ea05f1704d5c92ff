"""Exact training of small ReLU networks by the sequential nuclear-norm heuristic (paper 002).

The blog post after Doelman & Verhaegen (ECC 2016): the network that fits (X, Y) exactly is
written as affine constraints, inequalities and bilinear equalities (A1)-(A4), (B1), (B2) of
:mod:`liftnet.convex.reformulation`; every bilinear equality A B = C becomes the rank constraint
rank [[I, B - Y], [A - X, C - X B - A Y + X Y]] = size(I) for parameters X, Y; the heuristic
minimises the weighted sum of the nuclear norms of those matrices subject to the affine
constraints and inequalities (:func:`liftnet.convex.solve_heuristic`).  One ``step`` is one
iteration of the post's option 4::

    solve (8) with the parameters X, Y read from the reference point     # one convex problem
    X <- A*, Y <- B*  (the reference becomes the optimum)                 # option 4
    weights <- W*, b* of the optimum

Starts (the post's parameter settings; the weights before the first step are always the start
weights: ``params`` given to ``init_state``, else the random initialisation ``init``):

* ``given``: the reference is the lifted start network (Z = relu(U), S = relu(-U), W): with the
  weights of the network that made Y this is the post's "true values" (3), whose optimum is that
  network again; with other weights it refines them.
* ``perturbed``: the same plus i.i.d. N(0, perturbation^2) noise on every parameter entry.
* ``random``: i.i.d. N(0, random_std^2) parameters (2), whatever the weights.
* ``zero``: every parameter 0 (1).

An exact-fit model has no way to find the true weights from the data alone, so ``given`` and
``perturbed`` mean the true network only when its weights are passed as ``params``.  The data
are fitted exactly by constraint (A3): on data no network of this size fits, the convex problems
stay feasible but the weights of their optima need not fit (see the relative output error).

CVXPY is optional (``pip install liftnet[convex]``); without it the first ``step`` raises
``ImportError(liftnet.convex.CVXPY_MISSING)``, which names the install command.  Each step solves
a conic problem whose size grows with N times the hidden widths (``benchmarks/convex_heuristic``
reports the solve time and the problem size): the method is for small networks and data sets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from ..convex import (
    PRODUCT_BLOCKS,
    RELU_BLOCKS,
    SOLVERS,
    LiftedPoint,
    lift,
    max_violation,
    reference,
    residual_nuclear_norm,
    solve_heuristic,
)
from ..graph import Network, Params
from .base import (
    INIT_SCHEMES,
    DataKey,
    Method,
    MethodState,
    check_choice,
    check_positive,
    check_tol,
    data_key,
    start_params,
)

STARTS = ("given", "perturbed", "random", "zero")


@dataclass
class ConvexState(MethodState):
    """Weights, the reference point whose Z, S and W_1..W_L are the parameters X, Y of the next
    solve, and the last optimum (numpy float64 lifted points, :class:`LiftedPoint`)."""

    ref: LiftedPoint | None = None
    ref_key: DataKey | None = None  # data_key of the X that ref belongs to
    point: LiftedPoint | None = None  # optimum of the last solve (None before the first)
    value: float = math.nan  # optimal value of the last convex problem
    violation: float = math.nan  # largest bilinear constraint violation at ``point``
    seconds: float = 0.0  # wall time of the last solve (CVXPY compile and solver)
    status: str = ""  # solver status of the last solve


@dataclass(frozen=True)
class Convex(Method):
    """The sequential nuclear-norm convex heuristic of paper 002 (option 4), squared loss.

    Args:
        start: parameters of the first solve: ``given``, ``perturbed``, ``random``, ``zero``
            (module docstring).
        lam: weight of the ReLU blocks' nuclear norms (the products' weight is 1).
        relu_blocks: rank matrices of Z * S = 0: ``layer`` (one diag(vec Z) matrix per layer,
            the post's form), ``sample`` (one per sample) or ``entry`` (one 2 x 2 per entry).
        product_blocks: rank matrices of P = Z W^T: ``layer`` (the post's form) or ``sample``.
        solver: ``CLARABEL`` (interior point, accurate) or ``SCS`` (first order, larger
            problems, less accurate).
        tol: solver tolerance.
        perturbation: standard deviation of the noise of ``start="perturbed"``.
        random_std: standard deviation of the parameters of ``start="random"``.
        init: initial weights when none are given (``xavier``, ``normal``,
            ``variance_scaling``).
    """

    start: str = "given"
    lam: float = 1.0
    relu_blocks: str = "entry"
    product_blocks: str = "layer"
    solver: str = "CLARABEL"
    tol: float = 1e-8
    perturbation: float = 0.1
    random_std: float = 1.0
    init: str = "xavier"

    key: ClassVar[str] = "convex"
    monotone: ClassVar[bool] = False  # the sequential scheme has no descent guarantee
    full_batch_only: ClassVar[bool] = True
    losses: ClassVar[tuple[str, ...]] = ("mse",)
    hidden_activations: ClassVar[tuple[str, ...]] = ("relu",)
    default_batch_size: ClassVar[int] = 0
    default_epochs: ClassVar[int] = 30

    def __post_init__(self) -> None:
        check_choice("start", self.start, STARTS)
        check_positive("lam", self.lam)
        check_choice("relu_blocks", self.relu_blocks, RELU_BLOCKS)
        check_choice("product_blocks", self.product_blocks, PRODUCT_BLOCKS)
        check_choice("solver", self.solver, SOLVERS)
        check_tol("tol", self.tol)
        check_positive("perturbation", self.perturbation, allow_zero=True)
        check_positive("random_std", self.random_std)
        check_choice("init", self.init, INIT_SCHEMES)

    def check_network(self, net: Network) -> None:
        super().check_network(net)
        if net.n_hidden < 1:
            raise ValueError(
                f"Convex needs at least one hidden ReLU layer, got architecture {net.spec}"
            )

    # ------------------------------------------------------------------ state
    def init_state(
        self,
        net: Network,
        X: Tensor,
        Y: Tensor,
        *,
        generator: torch.Generator | None = None,
        params: Params | None = None,
    ) -> ConvexState:
        self.check_network(net)
        params = start_params(net, X, params, generator=generator, scheme=self.init)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        scale = self.perturbation if self.start == "perturbed" else self.random_std
        ref = reference(self.start, lift(_weights(params), _numpy(X)),
                        rng=np.random.default_rng(seed), scale=scale)
        return ConvexState(params=params, ref=ref, ref_key=data_key(X))

    # ------------------------------------------------------------------ objective
    def objective(self, net: Network, state: ConvexState, X: Tensor, Y: Tensor) -> float:
        """sum_g w_g ||C_g - A_g B_g||_* (``residual_nuclear_norm``): the weighted nuclear norms
        of the bilinear residuals at a point satisfying the affine constraints (A1)-(A4) for
        (X, Y): the last optimum for these data, else the lifted weights with P_L = Y - 1 b_L^T
        (whose residual is the output error Y - Y_hat).  It is the heuristic's objective at that
        point with the parameters set from it, less its lower bound, and zero exactly when the
        point is a network that fits (X, Y).  Not monotone along the iterations."""
        if state.point is not None and state.ref_key == data_key(X):
            point = state.point
        else:
            point = lift(_weights(state.params), _numpy(X), _numpy(Y))
        return residual_nuclear_norm(point, lam=self.lam, relu_blocks=self.relu_blocks,
                                     product_blocks=self.product_blocks)

    # ------------------------------------------------------------------ one iteration
    def step(
        self, net: Network, state: ConvexState, X: Tensor, Y: Tensor, *, new_batch: bool = True
    ) -> ConvexState:
        # full batch only: ``new_batch`` is ignored; a state made on other data restarts from
        # the lifted current weights (the ``given`` rule) on these data
        X0, Y0 = _numpy(X), _numpy(Y)
        if state.ref is None or state.ref_key != data_key(X):
            state.ref, state.ref_key = lift(_weights(state.params), X0), data_key(X)
            state.point = None
        # paper 002 (8): min sum of weighted nuclear norms s.t. the affine constraints (A1)-(A4)
        sol = solve_heuristic(X0, Y0, state.ref, lam=self.lam, relu_blocks=self.relu_blocks,
                              product_blocks=self.product_blocks, solver=self.solver,
                              tol=self.tol)
        # option 4: the parameters of the next solve are this optimum (X <- A*, Y <- B*)
        state.point = state.ref = sol.point
        state.params = [
            (torch.as_tensor(W, dtype=X.dtype, device=X.device).clone(),
             torch.as_tensor(b, dtype=X.dtype, device=X.device).clone())
            for W, b in zip(sol.point.W, sol.point.b, strict=True)
        ]
        state.value, state.status, state.seconds = sol.value, sol.status, sol.seconds
        state.violation = max_violation(sol.point)
        state.step += 1
        return state


def _numpy(T: Tensor) -> np.ndarray:
    return T.detach().to(device="cpu", dtype=torch.float64).numpy()


def _weights(params: Params) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(_numpy(W), _numpy(b)) for W, b in params]
