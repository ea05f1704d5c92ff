"""The exact-fit ReLU network as affine constraints plus bilinear equalities, and their ranks.

Paper 002 (after Doelman & Verhaegen 2016), batch-first (``docs/notation.md``).  A network with
L hidden ReLU layers and an identity output fits the data ``X_0`` (N, d_0), ``Y`` (N, d_{L+1})
exactly if and only if there are weights ``W_l`` (d_{l+1}, d_l), biases ``b_l`` (d_{l+1},),
hidden activations ``Z_l`` and slacks ``S_l`` (N, d_l), l = 1..L, and products ``P_l``
(N, d_{l+1}) with::

    affine       (A1)  Z_1 - S_1 = X_0 W_0^T + 1 b_0^T
                 (A2)  Z_{l+1} - S_{l+1} = P_l + 1 b_l^T          l = 1..L-1
                 (A3)  Y = P_L + 1 b_L^T
    inequality   (A4)  Z_l >= 0,  S_l >= 0
    bilinear     (B1)  Z_l * S_l = 0,  i.e. diag(vec Z_l) vec S_l = 0     (ReLU, Fischetti & Jo:
                                               u = z - s, z, s >= 0, z s = 0  <=>  z = relu(u))
                 (B2)  P_l = Z_l W_l^T                                    (the next layer's input)

The first layer is affine because X_0 is data.  Every bilinear equality ``A B = C`` is a rank
constraint (the post's substitution; Schur complement of the identity block)::

    M(A, B, C; X, Y) = [[I_n,    B - Y                ],
                        [A - X,  C - X B - A Y + X Y  ]],   rank M = n + rank(C - A B),

for *any* fixed parameters X, Y of the shapes of A, B; so ``A B = C`` iff ``rank M = n``.  M is
affine in (A, B, C), so sum_g w_g ||M_g||_* over the bilinear groups g, minimised subject to
(A1)-(A4), is a convex heuristic (:mod:`liftnet.convex.solve`).  With A = X, B = Y, C = X Y the
matrix is blockdiag(I_n, 0) and ||M||_* = n, its least possible value (||M||_* > n whenever
B != Y or A != X), so with the true values as parameters the true lifted point is the unique
optimum (W_0 and the biases being fixed by (A1)-(A3) when [X_0, 1] has full column rank).

How the groups are cut into blocks (every choice is an exact rank reformulation of (B1), (B2);
they differ as heuristics and in cost):

* ReLU (B1) ``relu_blocks``: ``"layer"`` one matrix per layer, A = diag(vec Z_l) (N d_l square),
  B = vec S_l, C = 0, X = diag(vec Zr_l), Y = vec Sr_l (the post's form; a (2 N d_l) x
  (N d_l + 1) matrix); ``"sample"`` one per sample n, A = diag(z_n) (d_l square), B = s_n^T;
  ``"entry"`` one 2 x 2 matrix [[1, s - sr], [z - zr, -(zr s + z sr - zr sr)]] per entry.
* products (B2) ``product_blocks``: ``"layer"`` one matrix per layer, A = Z_l, B = W_l^T,
  C = P_l, X = Zr_l, Y = Wr_l^T (the post's form, (d_l + N) x (d_l + d_{l+1})); ``"sample"`` one
  per sample n, A = z_n (1, d_l), C = p_n.

The parameters of every group are read from one reference :class:`LiftedPoint` ``ref`` (its Z,
S and W_1..W_L): the post's settings are zero, random, the true values, and the previous optimum
(option 4).  Everything here is numpy float64 and pure; the solve is in ``solve.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RELU_BLOCKS = ("layer", "sample", "entry")
PRODUCT_BLOCKS = ("layer", "sample")


@dataclass(frozen=True)
class LiftedPoint:
    """A point of the lifted problem (numpy float64, batch-first).

    Attributes:
        W: weights W_0..W_L, W_l (d_{l+1}, d_l) in the ``nn.Linear`` layout.
        b: biases b_0..b_L, b_l (d_{l+1},).
        Z: hidden activations Z_1..Z_L (``Z[l - 1]`` is layer l), (N, d_l), >= 0.
        S: slacks S_1..S_L, (N, d_l), >= 0; the pre-activations are U_l = Z_l - S_l.
        P: products P_1..P_L, P_l (N, d_{l+1}), equal to Z_l W_l^T at a network.
    """

    W: tuple[np.ndarray, ...]
    b: tuple[np.ndarray, ...]
    Z: tuple[np.ndarray, ...]
    S: tuple[np.ndarray, ...]
    P: tuple[np.ndarray, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Widths (d_0, ..., d_{L+1})."""
        return (self.W[0].shape[1],) + tuple(W.shape[0] for W in self.W)


def lift(weights: Sequence[tuple[np.ndarray, np.ndarray]], X0: np.ndarray,
         Y: np.ndarray | None = None) -> LiftedPoint:
    """The lifted point of a network: Z_l = relu(U_l), S_l = relu(-U_l), P_l = Z_l W_l^T with
    U_1 = X_0 W_0^T + b_0, U_{l+1} = P_l + b_l; ``weights`` is ``[(W_0, b_0), ..., (W_L, b_L)]``.

    It satisfies (A1), (A2), (A4), (B1), (B2), and (A3) for Y = the network's output.  With
    targets ``Y`` the last product is set to P_L = Y - 1 b_L^T instead, so that (A1)-(A4) hold
    for these data and the (B2) residual of layer L is Y - Y_hat, the network's output error.
    """
    Ws = tuple(np.asarray(W, dtype=np.float64) for W, _ in weights)
    bs = tuple(np.asarray(b, dtype=np.float64) for _, b in weights)
    if len(Ws) < 2:
        raise ValueError("the lifted problem needs at least one hidden layer (two weight pairs)")
    X0 = np.asarray(X0, dtype=np.float64)
    if X0.ndim != 2 or X0.shape[1] != Ws[0].shape[1]:
        raise ValueError(f"X0 must be (N, {Ws[0].shape[1]}) for these weights, got shape "
                         f"{X0.shape}")
    U = X0 @ Ws[0].T + bs[0]
    Z, S, P = [], [], []
    for W, b in zip(Ws[1:], bs[1:], strict=True):
        Z.append(np.maximum(U, 0.0))
        S.append(np.maximum(-U, 0.0))
        P.append(Z[-1] @ W.T)
        U = P[-1] + b
    point = LiftedPoint(Ws, bs, tuple(Z), tuple(S), tuple(P))
    if Y is not None:
        P[-1] = check_data(point, X0, Y)[1] - bs[-1]
        point = LiftedPoint(Ws, bs, tuple(Z), tuple(S), tuple(P))
    return point


def network_output(point: LiftedPoint, X0: np.ndarray) -> np.ndarray:
    """Y_hat (N, d_{L+1}) of the point's weights by the ordinary feed-forward rule."""
    out = np.asarray(X0, dtype=np.float64)
    for l, (W, b) in enumerate(zip(point.W, point.b, strict=True)):
        out = out @ W.T + b
        if l < len(point.W) - 1:
            out = np.maximum(out, 0.0)
    return out


def check_data(point: LiftedPoint, X0: np.ndarray, Y: np.ndarray, *, lifted: bool = True
               ) -> tuple[np.ndarray, np.ndarray]:
    """X0 (N, d_0) and Y (N, d_{L+1}) as float64 arrays, checked against the point's widths
    (and, with ``lifted``, its N rows of lifted variables); a 1-D Y is one output column.
    ValueError naming the problem otherwise (a broadcast would give wrong numbers)."""
    X0, Y = np.asarray(X0, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    d0, d_out = point.sizes[0], point.sizes[-1]
    if Y.ndim == 1 and d_out == 1:
        Y = Y[:, None]
    n = point.Z[0].shape[0] if lifted else len(X0)
    if X0.ndim != 2 or X0.shape[1] != d0 or len(X0) != n:
        raise ValueError(f"X0 must be (N, d_0) = ({n}, {d0}) for this point, got shape "
                         f"{X0.shape}")
    if Y.shape != (n, d_out):
        raise ValueError(f"Y must be (N, outputs) = ({n}, {d_out}) for this point, got shape "
                         f"{Y.shape}")
    if n == 0:
        raise ValueError("no samples: X0 and Y have 0 rows")
    if not (np.isfinite(X0).all() and np.isfinite(Y).all()):
        raise ValueError("X0 and Y must be finite (NaN or infinite values found)")
    return X0, Y


def relative_output_error(point: LiftedPoint, X0: np.ndarray, Y: np.ndarray) -> float:
    """||Y_hat - Y||_F / ||Y||_F of the point's weights (feed-forward rule) on (X0, Y), any
    number of samples; the absolute error ||Y_hat||_F when Y = 0."""
    X0, Y = check_data(point, X0, Y, lifted=False)
    norm = float(np.linalg.norm(Y))
    return float(np.linalg.norm(network_output(point, X0) - Y)) / (norm if norm > 0 else 1.0)


def affine_residual(point: LiftedPoint, X0: np.ndarray, Y: np.ndarray) -> float:
    """Largest violation of (A1)-(A4): max |lhs - rhs| of the equalities and max(0, -Z, -S)."""
    X0, Y = check_data(point, X0, Y)
    gaps = [point.Z[0] - point.S[0] - (X0 @ point.W[0].T + point.b[0])]
    for l in range(1, len(point.Z)):
        gaps.append(point.Z[l] - point.S[l] - (point.P[l - 1] + point.b[l]))
    gaps.append(Y - (point.P[-1] + point.b[-1]))
    worst = max(float(np.abs(g).max(initial=0.0)) for g in gaps)
    for T in (*point.Z, *point.S):
        worst = max(worst, float(np.maximum(-T, 0.0).max(initial=0.0)))
    return worst


def bilinear_residuals(point: LiftedPoint) -> list[tuple[str, np.ndarray]]:
    """The residuals C - A B of every bilinear group: ``("relu l", Z_l * S_l)`` and
    ``("product l", P_l - Z_l W_l^T)`` for l = 1..L."""
    out: list[tuple[str, np.ndarray]] = []
    for l, (Z, S, P) in enumerate(zip(point.Z, point.S, point.P, strict=True), start=1):
        out.append((f"relu {l}", Z * S))
        out.append((f"product {l}", P - Z @ point.W[l].T))
    return out


def bilinear_violations(point: LiftedPoint) -> dict[str, float]:
    """Largest absolute entry of each group's residual (the post's constraint violations)."""
    return {name: float(np.abs(R).max(initial=0.0)) for name, R in bilinear_residuals(point)}


def max_violation(point: LiftedPoint) -> float:
    """The largest bilinear constraint violation over all groups."""
    return max(bilinear_violations(point).values())


def residual_nuclear_norm(point: LiftedPoint, *, lam: float = 1.0, relu_blocks: str = "entry",
                          product_blocks: str = "layer") -> float:
    """sum_g w_g ||C_g - A_g B_g||_* over the blocks of every bilinear group (w = lam for ReLU
    blocks, 1 for products).  Equals the heuristic's objective at ``point`` with the parameters
    set from ``point`` (option 4), less its lower bound sum_g w_g n_g; zero iff every bilinear
    equality holds."""
    _check_blocks(relu_blocks, product_blocks)
    total = 0.0
    for l, (Z, S, P) in enumerate(zip(point.Z, point.S, point.P, strict=True), start=1):
        ZS = Z * S  # diag(vec Z) vec S is vec(Z * S): a column, whose nuclear norm is its 2-norm
        relu = {"layer": np.linalg.norm(ZS), "entry": np.abs(ZS).sum(),
                "sample": np.linalg.norm(ZS, axis=1).sum()}[relu_blocks]
        R = P - Z @ point.W[l].T
        prod = (np.linalg.svd(R, compute_uv=False).sum() if product_blocks == "layer"
                else np.linalg.norm(R, axis=1).sum())
        total += lam * float(relu) + float(prod)
    return total


def rank_matrix(A, B, C, X, Y, *, block=np.block):
    """M(A, B, C; X, Y) = [[I_n, B - Y], [A - X, C - X B - A Y + X Y]] for A (m, n), B (n, p),
    C (m, p); rank M = n + rank(C - A B).  ``block`` assembles the blocks (``np.block``, or
    ``cvxpy.bmat`` for expressions)."""
    n = B.shape[0]
    return block([[np.eye(n), B - Y], [A - X, C - X @ B - A @ Y + X @ Y]])


def bilinear_blocks(point: LiftedPoint, ref: LiftedPoint, *, relu_blocks: str = "entry",
                    product_blocks: str = "layer") -> list[tuple[str, tuple[np.ndarray, ...]]]:
    """Every block ``(group, (A, B, C, X, Y))`` of the heuristic as numeric matrices, with the
    parameters X, Y read from ``ref``: the reference from which ``solve.py`` builds the same
    matrices as cvxpy expressions (used to check a solve independently)."""
    _check_blocks(relu_blocks, product_blocks)
    out: list[tuple[str, tuple[np.ndarray, ...]]] = []
    for l in range(len(point.Z)):
        z, s = point.Z[l], point.S[l]
        zr, sr = ref.Z[l], ref.S[l]
        if relu_blocks == "layer":
            parts = [(z.reshape(-1), s.reshape(-1), zr.reshape(-1), sr.reshape(-1))]
        elif relu_blocks == "sample":
            parts = list(zip(z, s, zr, sr, strict=True))
        else:
            parts = list(zip(*(T.reshape(-1, 1) for T in (z, s, zr, sr)), strict=True))
        for zz, ss, zzr, ssr in parts:
            out.append((f"relu {l + 1}", (np.diag(zz), ss[:, None], np.zeros((len(zz), 1)),
                                          np.diag(zzr), ssr[:, None])))
        W, Wr, P = point.W[l + 1], ref.W[l + 1], point.P[l]
        rows = [slice(None)] if product_blocks == "layer" else [slice(n, n + 1)
                                                                for n in range(len(z))]
        for r in rows:
            out.append((f"product {l + 1}", (z[r], W.T, P[r], zr[r], Wr.T)))
    return out


def heuristic_value(point: LiftedPoint, ref: LiftedPoint, *, lam: float = 1.0,
                    relu_blocks: str = "entry", product_blocks: str = "layer") -> float:
    """sum_g w_g ||M(A_g, B_g, C_g; X_g, Y_g)||_* from numpy's singular values (an independent
    evaluation of the convex objective that ``solve.py`` minimises)."""
    total = 0.0
    for name, mats in bilinear_blocks(point, ref, relu_blocks=relu_blocks,
                                      product_blocks=product_blocks):
        weight = lam if name.startswith("relu") else 1.0
        total += weight * float(np.linalg.svd(rank_matrix(*mats), compute_uv=False).sum())
    return total


def reference(kind: str, point: LiftedPoint, *, rng: np.random.Generator | None = None,
              scale: float = 1.0) -> LiftedPoint:
    """The parameters of the post's settings, as a reference point shaped like ``point``:
    ``"zero"`` (1), ``"random"`` (2: i.i.d. N(0, scale^2) entries), ``"given"`` (3: ``point``
    itself, e.g. the lifted true network) and ``"perturbed"`` (``point`` plus i.i.d.
    N(0, scale^2) noise).  Only Z, S and W_1..W_L are parameters; W_0 and b are copied."""
    if kind == "given":
        return point
    if kind not in ("zero", "random", "perturbed"):
        raise ValueError(f"reference kind must be zero, random, given or perturbed, got {kind!r}")
    if kind != "zero" and rng is None:
        raise ValueError(f"the {kind!r} reference needs a random generator")

    def new(T: np.ndarray) -> np.ndarray:
        if kind == "zero":
            return np.zeros_like(T)
        noise = scale * rng.standard_normal(T.shape)
        return noise if kind == "random" else T + noise

    Z = tuple(new(T) for T in point.Z)
    S = tuple(new(T) for T in point.S)
    W = (point.W[0], *(new(T) for T in point.W[1:]))
    P = tuple(Zl @ Wl.T for Zl, Wl in zip(Z, W[1:], strict=True))
    return LiftedPoint(W, point.b, Z, S, P)


def _check_blocks(relu_blocks: str, product_blocks: str) -> None:
    if relu_blocks not in RELU_BLOCKS:
        raise ValueError(f"relu_blocks must be one of {', '.join(RELU_BLOCKS)}, "
                         f"got {relu_blocks!r}")
    if product_blocks not in PRODUCT_BLOCKS:
        raise ValueError(f"product_blocks must be one of {', '.join(PRODUCT_BLOCKS)}, "
                         f"got {product_blocks!r}")
