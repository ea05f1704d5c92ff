"""The nuclear-norm convex heuristic of paper 002, solved by CVXPY (optional: ``liftnet[convex]``).

One solve, for fixed parameters read from a reference point ``ref`` (see ``reformulation.py`` for
the constraints (A1)-(A4), the bilinear groups (B1), (B2) and the rank matrices M)::

    minimise    sum_l [ sum_{blocks of (B2), layer l} ||M||_*
                        + lam sum_{blocks of (B1), layer l} ||M||_* ]
    over        W_0..W_L, b_0..b_L, Z_l, S_l, P_l
    subject to  (A1), (A2), (A3), Z_l >= 0, S_l >= 0.

A nuclear norm of an m x n matrix becomes a semidefinite cone of size m + n (CVXPY's standard
form); a 2 x 2 block (``relu_blocks="entry"``) uses the closed form
||[[p, q], [r, s]]||_* = max(||(p + s, q - r)||_2, ||(p - s, q + r)||_2), two second-order cones.
The sequential scheme (the post's option 4) repeats the solve with ``ref`` set to the optimum;
it lives in :class:`liftnet.methods.Convex` and ``benchmarks/convex_heuristic.py``.

CVXPY is imported inside the functions, so ``import liftnet`` never needs it.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .reformulation import LiftedPoint, _check_blocks, check_data, rank_matrix

CVXPY_MISSING = ("the convex method needs cvxpy: pip install 'liftnet[convex]' (in a checkout: "
                 "pip install -e '.[convex]')")
SOLVERS = ("CLARABEL", "SCS")
#: refuse a CLARABEL solve whose dense semidefinite Hessian blocks would exceed this many bytes
CLARABEL_MEMORY_LIMIT = 2**30


def import_cvxpy():
    """The ``cvxpy`` module, or ``ImportError(CVXPY_MISSING)`` when it is not installed."""
    try:
        import cvxpy
    except ImportError as exc:  # also when sys.modules["cvxpy"] is None
        raise ImportError(CVXPY_MISSING) from exc
    return cvxpy


@dataclass(frozen=True)
class ProblemSize:
    """Size of one convex problem: the lifted problem's scalar unknowns, equalities (A1)-(A3)
    and inequalities (A4), the cones of the nuclear norms, and the conic form the solver gets
    (``rows`` x ``columns`` of its constraint matrix)."""

    variables: int
    equalities: int
    inequalities: int
    psd_cones: tuple[int, ...] = ()  # side of each semidefinite cone
    soc_cones: int = 0  # second-order cones of the 2 x 2 closed form
    rows: int = 0
    columns: int = 0

    @property
    def constraints(self) -> int:
        return self.equalities + self.inequalities

    def clarabel_bytes(self) -> int:
        """Memory of CLARABEL's dense Hessian blocks, one (k(k+1)/2)^2 block per k x k cone."""
        return int(sum((k * (k + 1) // 2) ** 2 for k in self.psd_cones) * 8)


@dataclass
class Solution:
    """The optimum of one solve: the lifted point, the optimal value and how it went."""

    point: LiftedPoint
    value: float
    status: str
    seconds: float  # wall time of CVXPY's compile and the solver
    size: ProblemSize
    stats: dict[str, Any] = field(default_factory=dict)


def solve_heuristic(
    X0: np.ndarray,
    Y: np.ndarray,
    ref: LiftedPoint,
    *,
    lam: float = 1.0,
    relu_blocks: str = "entry",
    product_blocks: str = "layer",
    solver: str = "CLARABEL",
    tol: float = 1e-8,
    max_iters: int = 100_000,
) -> Solution:
    """Solve the convex heuristic (module docstring) for the parameters read from ``ref``.

    Args:
        X0: inputs (N, d_0).
        Y: targets (N, d_{L+1}), fitted exactly by (A3).
        ref: reference point: its Z_l, S_l (N, d_l) and W_1..W_L give the parameters X, Y of the
            rank matrices; its shapes give the architecture.
        lam: weight of the ReLU blocks' nuclear norms (the products' weight is 1).
        relu_blocks, product_blocks: how the groups are cut into rank matrices
            (``reformulation.py``).
        solver: ``"CLARABEL"`` (interior point: accurate, but a dense (k(k+1)/2)^2 block per
            k x k semidefinite cone) or ``"SCS"`` (first order: large cones, less accuracy).
        tol: the solver's tolerance (CLARABEL gaps and feasibility; SCS eps_abs, eps_rel).
        max_iters: iteration limit of the solver.

    Returns:
        The optimal :class:`Solution`; raises ``FloatingPointError`` if the solver fails and
        ``ValueError`` if CLARABEL would need more than ``CLARABEL_MEMORY_LIMIT`` bytes.
    """
    _check_blocks(relu_blocks, product_blocks)
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    from ..methods.base import check_int, check_positive, check_tol  # (imports this module)

    check_positive("lam", lam)
    check_tol("tol", tol)
    check_int("max_iters", max_iters, 1)
    X0, Y = check_data(ref, X0, Y)
    sides = psd_sides(X0.shape[0], ref.sizes, relu_blocks, product_blocks)
    need = ProblemSize(0, 0, 0, sides).clarabel_bytes()
    if solver == "CLARABEL" and need > CLARABEL_MEMORY_LIMIT:  # checked before building
        raise ValueError(
            f"solver CLARABEL would need about {need / 2**30:.1f} GiB for the semidefinite "
            f"cones (largest {max(sides)} x {max(sides)}); use solver='SCS' or smaller blocks "
            "(relu_blocks='entry' or 'sample', product_blocks='sample')"
        )
    cp, prob, (W, b, Z, S, P), size = _build(X0, Y, ref, lam, relu_blocks, product_blocks)
    opts: dict[str, Any] = (
        {"tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol, "max_iter": max_iters}
        if solver == "CLARABEL" else {"eps_abs": tol, "eps_rel": tol, "max_iters": max_iters}
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Solution may be inaccurate")
        try:
            data = prob.get_problem_data(solver)[0]  # compiled once: solve() reuses it
            size = dataclasses.replace(size, rows=int(data["A"].shape[0]),
                                       columns=int(data["A"].shape[1]))
            prob.solve(solver=solver, **opts)
        except cp.error.SolverError as exc:
            raise _failure(f"the convex problem failed in {solver} ({str(exc).rstrip('.')})", X0,
                               Y) from None
    seconds = time.perf_counter() - t0
    if prob.status not in ("optimal", "optimal_inaccurate") or W[0].value is None:
        raise _failure(f"the convex problem was not solved: {solver} returned status "
                       f"{prob.status!r}", X0, Y)
    point = LiftedPoint(
        tuple(np.asarray(v.value, dtype=np.float64) for v in W),
        tuple(np.asarray(v.value, dtype=np.float64).reshape(-1) for v in b),
        tuple(np.asarray(v.value, dtype=np.float64) for v in Z),
        tuple(np.asarray(v.value, dtype=np.float64) for v in S),
        tuple(np.asarray(v.value, dtype=np.float64) for v in P),
    )
    stats = {"solve_time": prob.solver_stats.solve_time,
             "iterations": prob.solver_stats.num_iters}
    return Solution(point, float(prob.value), str(prob.status), seconds, size, stats)


def _failure(what: str, X0: np.ndarray, Y: np.ndarray) -> FloatingPointError:
    """A failed solve, with the likely cause: the problem is feasible (W = 0, Z = S = 0, P
    free) and bounded below, so a failure is numerical, most often badly scaled data."""
    scale = max(float(np.abs(X0).max(initial=0.0)), float(np.abs(Y).max(initial=0.0)))
    return FloatingPointError(
        f"{what}. The problem is feasible and bounded by construction, so this is numerical "
        f"trouble: the data reach {scale:.3g} in magnitude; rescale them to about 1 (e.g. "
        "standardise the inputs), or try the other solver or a looser tol")


def problem_size(X0: np.ndarray, Y: np.ndarray, ref: LiftedPoint, *, relu_blocks: str = "entry",
                 product_blocks: str = "layer", solver: str = "CLARABEL") -> ProblemSize:
    """The :class:`ProblemSize` of the problem :func:`solve_heuristic` would solve, without
    solving it (the conic form and its semidefinite cones as CVXPY compiles them for
    ``solver``)."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    X0, Y = np.asarray(X0, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    _, prob, _, size = _build(X0, Y, ref, 1.0, relu_blocks, product_blocks)
    data = prob.get_problem_data(solver)[0]
    return dataclasses.replace(size, rows=int(data["A"].shape[0]),
                               columns=int(data["A"].shape[1]),
                               psd_cones=tuple(int(k) for k in data["dims"].psd))


def psd_sides(n: int, sizes: tuple[int, ...], relu_blocks: str, product_blocks: str
              ) -> tuple[int, ...]:
    """Side of every semidefinite cone: a nuclear norm of an m x k matrix is one (m + k) cone;
    2 x 2 ReLU blocks (``entry``) use second-order cones instead."""
    _check_blocks(relu_blocks, product_blocks)
    out: list[int] = []
    for d, d_next in zip(sizes[1:-1], sizes[2:], strict=True):
        if relu_blocks == "layer":
            out.append(3 * n * d + 1)
        elif relu_blocks == "sample":
            out += [3 * d + 1] * n
        out += [n + 2 * d + d_next] if product_blocks == "layer" else [2 * d + 1 + d_next] * n
    return tuple(out)


def _build(X0: np.ndarray, Y: np.ndarray, ref: LiftedPoint, lam: float, relu_blocks: str,
           product_blocks: str):
    """The CVXPY problem of the module docstring, its variables (W, b, Z, S, P) and its size."""
    _check_blocks(relu_blocks, product_blocks)
    cp = import_cvxpy()
    sizes = ref.sizes
    N, L = X0.shape[0], len(sizes) - 2
    ones = np.ones((N, 1))

    def row(v, k):  # a length-k vector expression as a (1, k) row
        return cp.reshape(v, (1, k), order="C")

    W = [cp.Variable((sizes[l + 1], sizes[l]), name=f"W{l}") for l in range(L + 1)]
    b = [cp.Variable(sizes[l + 1], name=f"b{l}") for l in range(L + 1)]
    Z = [cp.Variable((N, sizes[l]), nonneg=True, name=f"Z{l}") for l in range(1, L + 1)]
    S = [cp.Variable((N, sizes[l]), nonneg=True, name=f"S{l}") for l in range(1, L + 1)]
    P = [cp.Variable((N, sizes[l + 1]), name=f"P{l}") for l in range(1, L + 1)]
    # (A1)-(A3); (A4) is the nonneg attribute
    cons = [Z[0] - S[0] == X0 @ W[0].T + ones @ row(b[0], sizes[1])]
    cons += [Z[l] - S[l] == P[l - 1] + ones @ row(b[l], sizes[l + 1]) for l in range(1, L)]
    cons.append(Y == P[-1] + ones @ row(b[L], sizes[-1]))

    relu_terms, prod_terms = [], []
    soc = 0
    for l in range(L):
        d = sizes[l + 1]
        zr, sr = ref.Z[l], ref.S[l]
        # (B1) Z * S = 0: A = diag(vec z), B = vec s, C = 0, X = diag(vec zr), Y = vec sr, so
        # B - Y = s - sr, A - X = diag(z - zr), C - X B - A Y + X Y = -(zr s + z sr - zr sr)
        corner = -(cp.multiply(zr, S[l]) + cp.multiply(sr, Z[l]) - zr * sr)
        if relu_blocks == "entry":
            q, r = S[l] - sr, Z[l] - zr
            relu_terms.append(cp.sum(cp.maximum(
                cp.norm(cp.vstack([cp.vec(1 + corner, order="C"), cp.vec(q - r, order="C")]),
                        2, axis=0),
                cp.norm(cp.vstack([cp.vec(1 - corner, order="C"), cp.vec(q + r, order="C")]),
                        2, axis=0))))
            soc += 2 * N * d
        else:
            groups = ([(slice(None), N * d)] if relu_blocks == "layer"
                      else [(slice(n, n + 1), d) for n in range(N)])
            for rows, k in groups:
                col = lambda T, k=k: cp.reshape(T, (k, 1), order="C")  # noqa: E731
                M = cp.bmat([[np.eye(k), col(S[l][rows] - sr[rows])],
                             [cp.diag(cp.vec(Z[l][rows] - zr[rows], order="C")),
                              col(corner[rows])]])
                relu_terms.append(cp.normNuc(M))
        # (B2) P_l = Z_l W_l^T: A = Z_l, B = W_l^T, C = P_l, X = Zr_l, Y = Wr_l^T
        Wr = ref.W[l + 1]
        rows_list = [slice(None)] if product_blocks == "layer" else [slice(n, n + 1)
                                                                      for n in range(N)]
        for rows in rows_list:
            M = rank_matrix(Z[l][rows], W[l + 1].T, P[l][rows], zr[rows], Wr.T, block=cp.bmat)
            prod_terms.append(cp.normNuc(M))
    objective = cp.sum(cp.hstack(prod_terms)) + lam * cp.sum(cp.hstack(relu_terms))
    prob = cp.Problem(cp.Minimize(objective), cons)
    metrics = prob.size_metrics
    size = ProblemSize(int(metrics.num_scalar_variables), int(metrics.num_scalar_eq_constr),
                       2 * N * sum(sizes[1:-1]),
                       psd_sides(N, sizes, relu_blocks, product_blocks), soc)
    return cp, prob, (W, b, Z, S, P), size
