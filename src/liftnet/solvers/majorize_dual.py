"""The majorisation-minimisation regression of :mod:`.majorize`, computed in sample space.

Same problem, same iterates (to rounding; the primal form's H also carries the tiny ridge of
:func:`~.majorize.mm_precision`, about 1e-10 of its diagonal), same stopping rule as
:func:`~.majorize.mm_regression`::

    min_{W, b}  phi(P W^T + 1 b^T) + g_w ||W - W0||^2 + g_b ||b - b0||^2 + rho ||W||^2,

for the case of fewer design rows than columns (R <= d, e.g. a batch of 500 MNIST images
into a 784-input layer) and one proximal weight for all of Theta = [W, b]:
``delta = 2 (g_w + rho) = 2 g_b > 0``.  Then, by Woodbury's identity with A = [P, 1],
``S = A A^T / delta`` (R, R) and ``C = (I / curv + S)^{-1}``, every MM step
``Theta <- H^{-1} (A^T (curv U_y - grad phi(U_y)) + 2 [g_w W0, g_b b0]^T)`` has the form

    Theta = Theta~0 + alpha^T A / delta,   Theta~0 = [g_w / (g_w + rho) W0, b0],
    alpha = C (V / curv - U~0),  U = A Theta^T = (V - alpha) / curv,

with V = curv U_y - grad phi(U_y) and U~0 = A Theta~0^T.  One (R, R) x (R, m) product per
step instead of the (R, d) x (d, m) products and the (d+1)^2 m solve of the primal form; the
step sizes, the restart test and the objective follow from alpha and U
(||Theta - Theta~0||^2 = <alpha, U - U~0> / delta), so Theta itself is formed once, at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .majorize import MMResult

__all__ = ["dual_applies", "mm_regression_dual", "sample_precision"]


def dual_applies(rows: int, cols: int, g_w: float, g_b: float, rho: float) -> bool:
    """Whether :func:`mm_regression_dual` solves this problem and is the cheaper form: fewer
    design rows than columns + 1 and one proximal weight g_b = g_w + rho > 0 for [W, b]."""
    return rows <= cols + 1 and g_b > 0 and math.isclose(g_b, g_w + rho, rel_tol=1e-12)


def sample_precision(P: Tensor, curvature: float, g_b: float) -> Tensor:
    """C = (I / curvature + A A^T / delta)^{-1}, A = [P, 1], delta = 2 g_b (float64, (R, R))."""
    if curvature <= 0 or g_b <= 0:
        raise ValueError(f"curvature and g_b must be > 0, got {curvature} and {g_b}")
    K = (P @ P.T).double().add_(1.0)  # A A^T: the bias column adds 1 everywhere
    M = K.div_(2.0 * g_b)
    M.diagonal().add_(1.0 / curvature)
    L, info = torch.linalg.cholesky_ex(M)
    if int(info) != 0:  # cannot happen for a positive curvature and g_b (M >= I / curv)
        raise ValueError("the sample-space matrix is not positive definite (NaN in the design?)")
    return torch.cholesky_inverse(L)


def mm_regression_dual(
    P: Tensor,
    grad_u: Callable[[Tensor], Tensor],
    value_u: Callable[[Tensor], float],
    W: Tensor,
    b: Tensor,
    precision: Tensor,
    curvature: float,
    *,
    W0: Tensor | None = None,
    b0: Tensor | None = None,
    g_w: float = 0.0,
    g_b: float = 0.0,
    rho: float = 0.0,
    tol: float = 1e-4,
    max_iter: int = 50,
    U: Tensor | None = None,
) -> MMResult:
    """Solve the problem of :func:`~.majorize.mm_regression` in sample space (module docstring).

    Args are those of :func:`~.majorize.mm_regression` (``U``: the start's outputs
    P W^T + 1 b^T where already known), except ``precision``: C from
    :func:`sample_precision` with the same ``curvature`` and ``g_b``; requires
    :func:`dual_applies`.
    """
    if not dual_applies(P.shape[0], P.shape[1], g_w, g_b, rho):
        raise ValueError("mm_regression_dual needs R <= d + 1 design rows and g_b = g_w + rho > 0")
    W0 = W if W0 is None else W0
    b0 = b if b0 is None else b0
    C = precision.to(P.dtype)
    curv, delta = float(curvature), 2.0 * g_b
    shrink = g_w / (g_w + rho)
    const = g_w * (1.0 - shrink) * float(torch.linalg.vector_norm(W0)) ** 2

    def dot(a: Tensor, c: Tensor) -> float:  # accumulated in float64 (see value_u)
        return float(torch.sum(a * c, dtype=torch.float64))

    U_s = torch.addmm(b, P, W.T) if U is None else U
    at_centre = shrink == 1.0 and torch.equal(W, W0) and torch.equal(b, b0)
    # U~0 = A Theta~0^T: the start's outputs when the step starts at the proximal centre
    U0 = U_s if at_centre else torch.addmm(b0, P, W0.T, alpha=shrink)
    norm0_sq = shrink**2 * float(torch.linalg.vector_norm(W0)) ** 2 \
        + float(torch.linalg.vector_norm(b0)) ** 2  # ||Theta~0||^2
    f_start = value_u(U_s) + g_w * float(torch.linalg.vector_norm(W - W0)) ** 2 \
        + g_b * float(torch.linalg.vector_norm(b - b0)) ** 2 \
        + rho * float(torch.linalg.vector_norm(W)) ** 2
    # ||Theta~0 - Theta_s||^2 and U~0 - U_s: the first step starts outside the affine set
    start_gap_sq = float(torch.linalg.vector_norm(shrink * W0 - W)) ** 2 \
        + float(torch.linalg.vector_norm(b0 - b)) ** 2
    dU_start = U0 - U_s

    alpha = alpha_y = None  # None: the start point
    U, U_y = U_s, U_s
    t, y_is_x = 1.0, True
    step_rel, it, converged = math.inf, 0, False
    while it < max_iter:
        V = torch.sub(U_y, grad_u(U_y), alpha=1.0 / curv)  # V / curv
        new = C @ (V - U0)
        U_new = V.sub_(new, alpha=1.0 / curv)
        it += 1
        if alpha_y is None:  # from the start point
            diff_sq = start_gap_sq + (2.0 * dot(dU_start, new) + dot(new, U_new - U0)) / delta
        else:
            diff_sq = dot(new - alpha_y, U_new - U_y) / delta
        norm_sq = norm0_sq + dot(new, U_new + U0) / delta
        step_rel = math.sqrt(max(diff_sq, 0.0)) / max(math.sqrt(max(norm_sq, 0.0)), 1e-12)
        if y_is_x and step_rel <= tol:
            alpha, U, converged = new, U_new, True
            break
        restart = step_rel <= tol or (
            alpha_y is not None and alpha is not None
            and dot(alpha_y - new, U_new - U) > 0)
        if restart:
            alpha, U, alpha_y, U_y, y_is_x, t = new, U_new, new, U_new, True, 1.0
        else:
            t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
            beta = (t - 1.0) / t_new
            if beta and alpha is not None:
                alpha_y = torch.lerp(alpha, new, 1.0 + beta)  # new + beta (new - alpha)
                U_y = torch.lerp(U, U_new, 1.0 + beta)
            else:
                alpha_y, U_y = new, U_new
            alpha, U, y_is_x, t = new, U_new, alpha_y is new, t_new
    if alpha is None:
        return MMResult(W, b, it, step_rel, converged)
    f_end = value_u(U) + 0.5 * dot(alpha, U - U0) + const
    if f_end > f_start:
        return MMResult(W, b, it, step_rel, converged)
    theta = alpha.T @ P  # (m, d): Theta = Theta~0 + alpha^T A / delta
    Wn = theta.div_(delta).add_(W0, alpha=shrink)
    bn = alpha.sum(0).div_(delta).add_(b0)
    return MMResult(Wn.contiguous(), bn.contiguous(), it, step_rel, converged)
