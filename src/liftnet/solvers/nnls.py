"""Box-constrained quadratic programs and NNLS with one coefficient matrix shared by all rows.

Paper 004 (13): the X-update of a ReLU layer is a matrix non-negative least squares whose rows
(data points) share the coefficient matrix W_l, so all rows are solved at once, one
(N, d) x (d, d) matmul per iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .pgd import lipschitz_sym

__all__ = ["QPResult", "box_qp", "nnls"]

# rows per block on CPU: about this many elements, so that a block's iterates stay in cache
_CHUNK_ELEMENTS = 1 << 18


@dataclass(eq=False)
class QPResult:
    """Result of :func:`box_qp` / :func:`nnls`.

    Attributes:
        Z: the solution, shape (N, d).
        iterations: number of FISTA steps taken.
        residual: the scaled projected-gradient residual of Z (see :func:`box_qp`).
        converged: whether the residual reached ``tol``.
    """

    Z: Tensor
    iterations: int
    residual: float
    converged: bool


def box_qp(
    H: Tensor,
    Q: Tensor,
    Z0: Tensor | None = None,
    *,
    lower: float | None = 0.0,
    upper: float | None = None,
    tol: float = 1e-5,
    max_iter: int = 500,
) -> QPResult:
    """Solve row by row ``argmin_{lower <= z <= upper} 1/2 z^T H z - q^T z``.

    H: (d, d) symmetric positive (semi-)definite, shared by all rows; Q: (N, d), its rows are
    the q; Z0: (N, d) warm start; returns Z: (N, d).  ``lower`` / ``upper`` may be None
    (unbounded).  Computed in the dtype and on the device of Q.

    Method: FISTA with step 1/L, L = largest eigenvalue of H (:func:`lipschitz_sym`), started at
    the projection of Z0 onto the box (default: the projection of 0).  Each row has its own
    momentum, reset when ``<y - z+, z+ - z> > 0`` (gradient restart, O'Donoghue & Candes), in
    which case that row takes the plain projected-gradient step from z instead.  Gradients are
    affine in z, so the gradient at the extrapolated point is combined from those at the last
    two iterates: one matmul ``Z H`` per iteration.

    Stopping rule: with ``G = Z H - Q`` and P the projection onto the box, the residual::

        r = ||Z - P(Z - G / L)||_F * L / max(||Q||_F, tiny)

    falls to ``tol`` or ``max_iter`` iterations are taken.  Each row gets a share
    ``tau_i = tol * sqrt((||q_i||^2 + ||Q||_F^2 / N) / 2)`` of the budget, with
    ``sum_i tau_i^2 = tol^2 ||Q||_F^2``: a row is frozen once its own residual
    ``||z_i - P(z_i - g_i / L)|| * L`` is below tau_i, and a block of rows (on CPU, rows are
    solved in cache-sized blocks; on other devices all at once) stops once the sum of its
    squared residuals is below the sum of its tau_i^2, so r <= tol when every block stopped.
    ``iterations`` is the largest number of steps any block took.

    Monotone guarantee: at the end, every row whose objective is larger than that of the
    corresponding row of the projected Z0 is replaced by it, so no row ever gets worse.

    Returns:
        QPResult(Z, iterations, residual, converged); residual is r of the returned Z.
    """
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"H must be (d, d), got {tuple(H.shape)}")
    if Q.ndim != 2 or Q.shape[1] != H.shape[0]:
        raise ValueError(f"Q must be (N, d) with d = {H.shape[0]}, got {tuple(Q.shape)}")
    if Z0 is not None and Z0.shape != Q.shape:
        raise ValueError(f"Z0 must have the shape of Q {tuple(Q.shape)}, got {tuple(Z0.shape)}")
    if lower is not None and upper is not None and lower > upper:
        raise ValueError(f"need lower <= upper, got lower={lower}, upper={upper}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter}")
    H = H.to(Q.dtype)
    L = lipschitz_sym(H)
    if not L > 0 or not math.isfinite(L):
        raise ValueError(f"the largest eigenvalue of H must be finite and > 0, got {L}")
    n, d = Q.shape
    q_sq = Q.square().sum(dim=1)
    q_norm = max(float(q_sq.sum().sqrt()), torch.finfo(Q.dtype).tiny)
    # per-row budgets with sum_i tau_i^2 = tol^2 ||Q||_F^2 (minus a tiny margin for rounding)
    tau_sq = (tol * 0.999) ** 2 * (q_sq + q_norm**2 / max(n, 1)) / 2
    Z = torch.empty_like(Q)
    # Rows are independent problems: on CPU, solve them in chunks that stay in cache, which
    # makes the ~10 elementwise passes per iteration cheap next to the matmul.
    rows = max(n, 1) if Q.device.type != "cpu" else max(256, _CHUNK_ELEMENTS // max(d, 1))
    iterations, res_sq, converged = 0, 0.0, True
    for i in range(0, n, rows):
        sl = slice(i, min(i + rows, n))
        start = Z0[sl].to(Q.dtype) if Z0 is not None else torch.zeros_like(Q[sl])
        Zc, it, rc, cc = _fista_rows(H, Q[sl], start, tau_sq[sl], L, lower, upper, max_iter)
        Z[sl] = Zc
        iterations, res_sq, converged = max(iterations, it), res_sq + rc, converged and cc
    residual = math.sqrt(res_sq) / q_norm
    return QPResult(Z, iterations, residual, converged or residual <= tol)


def _fista_rows(
    H: Tensor,
    Q: Tensor,
    Z0: Tensor,
    tau_sq: Tensor,
    L: float,
    lower: float | None,
    upper: float | None,
    max_iter: int,
) -> tuple[Tensor, int, float, bool]:
    """FISTA of :func:`box_qp` on a block of rows.

    Stops when ``sum_i res_i^2 <= sum_i tau_sq_i`` over the block, every row has
    ``res_i^2 <= tau_sq_i``, or after max_iter steps, with ``res_i = ||z_i - P(z_i - g_i/L)|| L``.

    Returns:
        (Z, iterations, sum_i res_i^2 of the returned Z, converged).
    """
    inv_l = 1.0 / L

    def proj_(X: Tensor) -> Tensor:
        return X if lower is None and upper is None else X.clamp_(lower, upper)

    def grad(X: Tensor, Qs: Tensor) -> Tensor:
        return torch.addmm(Qs, X, H, beta=-1.0)  # X H - Q

    def pg_step(X: Tensor, G: Tensor) -> Tensor:
        return proj_(torch.add(X, G, alpha=-inv_l))

    n = Q.shape[0]
    start = proj_(Z0.clone())
    G_start = grad(start, Q)
    budget = float(tau_sq.sum())
    out_Z = torch.empty_like(Q)
    out_G = torch.empty_like(Q)
    idx = torch.arange(n, device=Q.device)
    Z, G, Qa, tau_a = start, G_start, Q, tau_sq
    Z_prev, G_prev = Z, G
    t = torch.ones(n, dtype=Q.dtype, device=Q.device)
    frozen_sq = 0.0
    it = 0
    converged = False
    while True:
        PZ = pg_step(Z, G)
        res_sq = torch.linalg.vector_norm(Z - PZ, dim=1).square_().mul_(L * L)
        done = res_sq <= tau_a
        n_done = int(done.sum())
        if n_done == Z.shape[0] or frozen_sq + float(res_sq.sum()) <= budget:
            converged = True
            break
        if it >= max_iter:
            break
        if n_done and n_done >= Z.shape[0] // 8:
            # freeze converged rows: write them out and shrink the working set
            out_Z[idx[done]] = Z[done]
            out_G[idx[done]] = G[done]
            frozen_sq += float(res_sq[done].sum())
            keep = ~done
            idx, Z, G, Z_prev, G_prev, PZ = (a[keep] for a in (idx, Z, G, Z_prev, G_prev, PZ))
            Qa, tau_a, t = Qa[keep], tau_a[keep], t[keep]
        it += 1
        t_new = 0.5 * (1.0 + (1.0 + 4.0 * t * t).sqrt())
        beta = ((t - 1.0) / t_new).unsqueeze(1)
        Y = torch.addcmul(Z, beta, Z - Z_prev)
        GY = torch.addcmul(G, beta, G - G_prev)
        Z_new = pg_step(Y, GY)
        # gradient restart: momentum step against the projected gradient direction
        restart = ((Y.sub_(Z_new)).mul_(Z_new - Z)).sum(dim=1) > 0
        Z_new = torch.where(restart.unsqueeze(1), PZ, Z_new)
        t = torch.where(restart, torch.ones_like(t_new), t_new)
        Z_prev, G_prev = Z, G
        Z = Z_new
        G = grad(Z, Qa)
    out_Z[idx] = Z
    out_G[idx] = G

    # monotone guarantee: f(z) = 1/2 z^T H z - q^T z = 1/2 <z, g - q> with g = z H - q
    f_out = (out_Z * (out_G - Q)).sum(dim=1)
    f_start = (start * (G_start - Q)).sum(dim=1)
    worse = (f_start < f_out).unsqueeze(1)
    replaced = bool(worse.any())
    if replaced:
        out_Z = torch.where(worse, start, out_Z)
        out_G = torch.where(worse, G_start, out_G)
    res_sq_total = float(torch.linalg.vector_norm(out_Z - pg_step(out_Z, out_G)) ** 2) * L * L
    if replaced:
        converged = res_sq_total <= budget / 0.999**2
    return out_Z, it, res_sq_total, converged


def nnls(
    A: Tensor,
    C: Tensor,
    Z0: Tensor | None = None,
    *,
    tol: float = 1e-5,
    max_iter: int = 500,
) -> QPResult:
    """Matrix non-negative least squares with one shared coefficient matrix.

    Return, row by row, ``argmin_{Z >= 0} 1/2 ||Z A^T - C||_F^2`` with A: (m, d) shared,
    C: (N, m), Z: (N, d); i.e. :func:`box_qp` with ``H = A^T A``, ``Q = C A``, lower = 0 and
    the same stopping rule (residual relative to ``||C A||_F``).  A singular ``A^T A`` is fine
    (FISTA still converges, in objective); only ``A != 0`` is required (L > 0).
    """
    if A.ndim != 2 or C.ndim != 2 or C.shape[1] != A.shape[0]:
        raise ValueError(
            f"A must be (m, d) and C (N, m), got {tuple(A.shape)} and {tuple(C.shape)}"
        )
    if A.dtype != C.dtype or A.device != C.device:
        raise ValueError(f"A and C must share dtype and device, got {A.dtype}/{A.device} and "
                         f"{C.dtype}/{C.device}")
    return box_qp(A.T @ A, C @ A, Z0, lower=0.0, upper=None, tol=tol, max_iter=max_iter)
