"""Ridge regression from data or from sufficient statistics (Gram matrices).

Paper 004, Section 6.1: with the lifted variables fixed, every layer's ``(W, b)`` is a (matrix)
ridge regression.  The problem only sees the data through ``Xa^T Xa`` and ``Xa^T T`` with
``Xa = [X, 1]``, so mini-batch or distributed W-steps just add :class:`GramStats`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["GramStats", "gram_stats", "ridge", "ridge_from_stats", "ridge_operator"]


@dataclass(frozen=True, eq=False)
class GramStats:
    """Sufficient statistics of a least-squares problem with an intercept column.

    With ``Xa = [X, 1]`` of shape (N, d_in + 1) and a sample weight ``w``:

    Attributes:
        xx: ``w * Xa^T Xa``, shape (d_in + 1, d_in + 1); the last row/column is the intercept.
        xt: ``w * Xa^T T``, shape (d_in + 1, d_out).
        n: number of samples N summed into the statistics.

    Statistics of disjoint batches add up: ``gram_stats(X1, T1) + gram_stats(X2, T2)`` equals
    ``gram_stats(cat(X1, X2), cat(T1, T2))``; ``sum(list_of_stats)`` works too.
    """

    xx: Tensor
    xt: Tensor
    n: int

    @property
    def d_in(self) -> int:
        return self.xx.shape[0] - 1

    @property
    def d_out(self) -> int:
        return self.xt.shape[1]

    def __add__(self, other: GramStats) -> GramStats:
        if not isinstance(other, GramStats):
            return NotImplemented
        if self.xx.shape != other.xx.shape or self.xt.shape != other.xt.shape:
            raise ValueError(
                f"cannot add GramStats with xx {tuple(self.xx.shape)}, xt {tuple(self.xt.shape)}"
                f" to xx {tuple(other.xx.shape)}, xt {tuple(other.xt.shape)}"
            )
        return GramStats(self.xx + other.xx, self.xt + other.xt, self.n + other.n)

    def __radd__(self, other: object) -> GramStats:
        # lets the builtin sum() start from 0
        if isinstance(other, int) and other == 0:
            return self
        return NotImplemented


def gram_stats(
    X: Tensor, T: Tensor, weight: float = 1.0, *, xx: Tensor | None = None
) -> GramStats:
    """Sufficient statistics ``(w Xa^T Xa, w Xa^T T, N)`` with ``Xa = [X, 1]``.

    Args:
        X: inputs, shape (N, d_in).
        T: targets, shape (N, d_out), same dtype and device as X.
        weight: scalar w multiplying both matrices (e.g. lam / N of the lifted objective).
        xx: ``Xa^T Xa`` computed earlier for this X (unweighted), to skip its N d_in^2 work
            when only the targets changed (e.g. the input layer in full-batch training).

    Returns:
        GramStats with ``xx`` (d_in + 1, d_in + 1) and ``xt`` (d_in + 1, d_out), computed
        block-wise (no copy of X with an appended column) in the dtype of X.
    """
    if X.ndim != 2 or T.ndim != 2 or X.shape[0] != T.shape[0]:
        raise ValueError(
            f"X and T must be (N, d_in) and (N, d_out), got {tuple(X.shape)} and {tuple(T.shape)}"
        )
    if X.dtype != T.dtype or X.device != T.device:
        raise ValueError(
            f"X and T must share dtype and device, "
            f"got {X.dtype}/{X.device} and {T.dtype}/{T.device}"
        )
    n, d = X.shape
    if xx is None:
        xx = X.new_empty((d + 1, d + 1))
        xx[:d, :d] = X.T @ X
        sx = X.sum(dim=0)
        xx[:d, d] = sx
        xx[d, :d] = sx
        xx[d, d] = n
    elif xx.shape != (d + 1, d + 1):
        raise ValueError(f"xx must be ({d + 1}, {d + 1}) for X {tuple(X.shape)}, "
                         f"got {tuple(xx.shape)}")
    else:
        xx = xx.clone()
    xt = torch.cat([X.T @ T, T.sum(dim=0, keepdim=True)], dim=0)
    if weight != 1.0:
        xx.mul_(weight)
        xt = xt * weight
    return GramStats(xx, xt, n)


def ridge_from_stats(
    stats: GramStats,
    alpha: float,
    *,
    fit_intercept: bool = True,
    W0: Tensor | None = None,
    b0: Tensor | None = None,
    gamma: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Ridge regression, optionally proximal, from sufficient statistics.

    Return::

        argmin_{W, b}  1/2 ||Xa [W b]^T - T||_F^2 + alpha/2 ||W||_F^2
                       + gamma/2 (||W - W0||_F^2 + ||b - b0||^2)

    expressed through ``stats = gram_stats(X, T)``: X (N, d_in), T (N, d_out), W (d_out, d_in),
    b (d_out,), Xa = [X, 1].  The intercept b is not penalised by alpha.  With
    ``fit_intercept=False``, b = 0 and the intercept row/column of the statistics is ignored
    (so is the b-part of the proximal term).  W0 / b0 default to zero.

    The normal equations ``(Xa^T Xa + alpha D + gamma I) theta = Xa^T T + gamma theta0``
    (D = diag(1, .., 1, 0), theta = [W b]^T) are solved in float64 (the system is only
    (d_in + 1)^2, so this costs nothing next to forming the Gram matrix) by Cholesky; if the
    system is singular or numerically so (alpha = gamma = 0 with rank-deficient X, judged at
    the precision of the statistics' dtype), by the pseudo-inverse, i.e. the minimum-norm
    solution.  The result is cast back to the dtype of the statistics.

    Raises:
        ValueError: alpha < 0, gamma < 0, or shapes that do not agree.
        FloatingPointError: the solution is not finite (e.g. NaN in the data).
    """
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if not gamma >= 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    xx, xt = stats.xx, stats.xt
    if xx.ndim != 2 or xx.shape[0] != xx.shape[1] or xt.ndim != 2 or xt.shape[0] != xx.shape[0]:
        raise ValueError(
            f"stats.xx must be (d_in+1, d_in+1) and stats.xt (d_in+1, d_out), "
            f"got {tuple(xx.shape)} and {tuple(xt.shape)}"
        )
    d, d_out = xx.shape[0] - 1, xt.shape[1]
    if W0 is not None and tuple(W0.shape) != (d_out, d):
        raise ValueError(f"W0 must be (d_out, d_in) = {(d_out, d)}, got {tuple(W0.shape)}")
    if b0 is not None and tuple(b0.shape) != (d_out,):
        raise ValueError(f"b0 must be (d_out,) = {(d_out,)}, got {tuple(b0.shape)}")

    dtype = xx.dtype
    m = d + 1 if fit_intercept else d
    A = xx[:m, :m].to(torch.float64).clone()
    B = xt[:m].to(torch.float64).clone()
    A.diagonal()[:d] += alpha
    if gamma > 0:
        A.diagonal().add_(gamma)
        if W0 is not None:
            B[:d] += gamma * W0.to(torch.float64).T
        if fit_intercept and b0 is not None:
            B[d] += gamma * b0.to(torch.float64)
    # Without regularisation the system may be singular, and it is only known to the precision
    # of the statistics (float32 rounding turns a singular Gram matrix into a barely definite
    # one); with alpha > 0 or gamma > 0 it is positive definite and Cholesky is backward stable.
    rel = torch.finfo(dtype).eps if alpha == 0 and gamma == 0 else torch.finfo(torch.float64).eps
    theta = _solve_psd(A, B, rel, definite=alpha > 0 or gamma > 0)
    W = theta[:d].T.to(dtype).contiguous()
    b = theta[d].to(dtype).clone() if fit_intercept else xt.new_zeros(d_out)  # not a view
    return W, b


def ridge_operator(xx: Tensor, alpha: float, *, fit_intercept: bool = True) -> Tensor:
    """The linear map from targets to the ridge solution for one fixed design.

    Return M, float64 of shape (d_in + 1, d_in + 1) (or (d_in, d_in) without intercept), such
    that for every ``stats`` with ``stats.xx == xx``, ``theta = M @ stats.xt[:m]`` (m = d_in + 1,
    or d_in) is ``[W b]^T`` of ``ridge_from_stats(stats, alpha, fit_intercept=...)`` without
    proximal term (minimum-norm when singular).  For methods that solve many least-squares
    problems with the same inputs (Taylor et al.'s W_1 <- z_1 pinv(X)), so the d^3 work (a
    pseudo-inverse when X is rank-deficient, as MNIST's constant pixels make it) is done once.
    """
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if xx.ndim != 2 or xx.shape[0] != xx.shape[1]:
        raise ValueError(f"xx must be square (d_in+1, d_in+1), got {tuple(xx.shape)}")
    d = xx.shape[0] - 1
    m = d + 1 if fit_intercept else d
    A = xx[:m, :m].to(torch.float64).clone()
    A.diagonal()[:d] += alpha
    rel = torch.finfo(xx.dtype).eps if alpha == 0 else torch.finfo(torch.float64).eps
    return _solve_psd(A, torch.eye(m, dtype=torch.float64, device=xx.device), rel,
                      definite=alpha > 0)


def ridge(
    X: Tensor,
    T: Tensor,
    alpha: float,
    *,
    fit_intercept: bool = True,
    W0: Tensor | None = None,
    b0: Tensor | None = None,
    gamma: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Ridge regression from data: ``ridge_from_stats(gram_stats(X, T), alpha, ...)``.

    Return::

        argmin_{W, b}  1/2 ||X W^T + b - T||_F^2 + alpha/2 ||W||_F^2
                       + gamma/2 (||W - W0||_F^2 + ||b - b0||^2)

    X (N, d_in), T (N, d_out), W (d_out, d_in), b (d_out,); see :func:`ridge_from_stats`.
    """
    return ridge_from_stats(
        gram_stats(X, T), alpha, fit_intercept=fit_intercept, W0=W0, b0=b0, gamma=gamma
    )


def _solve_psd(A: Tensor, B: Tensor, rel: float, *, definite: bool = False) -> Tensor:
    """Solve ``A X = B`` for symmetric PSD A (float64) by Cholesky, else by pseudo-inverse.

    A is treated as singular when Cholesky fails, a squared pivot is below
    ``m * rel * max_i A_ii`` or, unless A is known to be ``definite`` (regularised: the
    solution is unique, only rounding-level pivots matter), its smallest eigenvalue is below
    that level (rel: the relative precision A is known to); the pseudo-inverse then drops the
    eigenvalues below ``m * rel`` times the largest and returns the minimum-norm solution.
    """
    m = A.shape[0]
    if m == 0:
        return B.clone()
    if not bool(torch.isfinite(A).all() and torch.isfinite(B).all()):
        raise FloatingPointError("ridge statistics contain NaN or Inf")
    cutoff = m * rel
    L, info = torch.linalg.cholesky_ex(A)
    top = A.diagonal().abs().max()  # within a factor m of the largest eigenvalue
    # A pivot is at least the smallest eigenvalue, so a pivot at rounding level proves A
    # singular in floating point; pivots above it prove nothing (a Gram matrix with one exact
    # null direction often has none that small), so then the smallest eigenvalue decides.
    if int(info) == 0 and bool(L.diagonal().square().min() > cutoff * top):
        if definite or bool(torch.linalg.eigvalsh(A)[0] > cutoff * top):
            X = torch.cholesky_solve(B, L)
            if bool(torch.isfinite(X).all()):
                return X
    X = torch.linalg.pinv(A, rtol=cutoff, hermitian=True) @ B
    if not bool(torch.isfinite(X).all()):
        raise FloatingPointError("ridge solution is not finite")
    return X
