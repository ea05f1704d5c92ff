"""Closed-form proximal maps shared by the splitting methods (ADMM, proximal BCD).

Both kernels are the exact minimisers of small convex (or, for :func:`relu_prox`, piecewise
convex) problems that appear in every layer of the auxiliary-variable formulations of
Taylor et al. (2016) and Zeng, Lau, Lin and Yao (2019).  Pure functions, batch-first shapes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["linear_prox", "relu_prox"]


def relu_prox(v: Tensor, c: Tensor, gamma: float, s: float, *, out: Tensor | None = None) -> Tensor:
    """Return ``argmin_u gamma/2 (v - relu(u))^2 + s/2 (u - c)^2``, element-wise.

    v, c: tensors of one shape; gamma >= 0 and s > 0 scalars; ``out``: optional tensor of that
    shape to write the result into.  The objective is convex on each half-line; its half-line
    minimisers are ``u_neg = min(c, 0)`` and ``u_pos = max(0, p)``, p = (gamma v + s c)/(gamma + s),
    with values ``gamma/2 v^2 + s/2 relu(c)^2`` and, when p > 0,
    ``gamma s / (2 (gamma + s)) (v - c)^2``.  Comparing them gives three branches::

        u = max(0, p)   if c >= kappa * max(v, 0),   kappa = 1 - sqrt(1 + gamma/s) <= 0
        u = c           otherwise (then c < 0)

    (for c >= 0 the point 0 = u_neg lies in the positive branch, so u_pos wins; for c < 0 and
    v > 0, u_pos wins iff s (v - c)^2 <= (gamma + s) v^2, which implies p > 0).  Ties go to
    ``u_pos``.  This is the hidden pre-activation update of Taylor et al. (z_l, s = beta) and
    the three-branch U-update of Zeng et al. (s = rho + alpha).
    """
    if not s > 0 or not gamma >= 0:
        raise ValueError(f"relu_prox needs s > 0 and gamma >= 0, got s={s}, gamma={gamma}")
    kappa = 1.0 - math.sqrt(1.0 + gamma / s)
    p = torch.add(c, v, alpha=gamma / s).mul_(s / (gamma + s)).clamp_(min=0)
    keep = torch.ge(c, v.clamp(min=0).mul_(kappa))
    if out is None:
        return torch.where(keep, p, c)
    return torch.where(keep, p, c, out=out)


def linear_prox(
    T: Tensor,
    W: Tensor,
    P: Tensor,
    *,
    rho: float,
    gamma: float,
    b: Tensor | None = None,
) -> Tensor:
    """Return ``argmin_V rho/2 ||V W^T + b - T||_F^2 + gamma/2 ||V - P||_F^2``.

    T (N, d_out), W (d_out, d_in), P (N, d_in), b (d_out,) or None, V (N, d_in); rho >= 0,
    gamma > 0.  Written as a correction of the prior P, so that nothing large cancels when T is
    nearly P W^T + b or W is large::

        V = P + R M,   R = T - b - P W^T,   M = rho W (rho W^T W + gamma I)^-1
                                              = (W W^T + gamma/rho I)^-1 W,

    with the small matrix M (d_out, d_in) formed in float64 by Cholesky of whichever of the two
    Gram matrices is smaller (the second form is the Woodbury identity).  Two GEMMs of
    N d_in d_out flops.  This is the activation update of Taylor et al. (a_l) and of Zeng et al.
    (V_{i-1}).
    """
    if not gamma > 0 or not rho >= 0:
        raise ValueError(f"linear_prox needs gamma > 0 and rho >= 0, got gamma={gamma}, rho={rho}")
    if T.ndim != 2 or P.ndim != 2 or W.shape != (T.shape[1], P.shape[1]) or len(T) != len(P):
        raise ValueError(
            f"shapes do not agree: T {tuple(T.shape)}, W {tuple(W.shape)}, P {tuple(P.shape)}"
        )
    d_out, d_in = W.shape
    if rho == 0:
        return P.clone()
    W64 = W.to(torch.float64)
    if d_out <= d_in:
        K = W64 @ W64.T
        K.diagonal().add_(gamma / rho)
        M = torch.cholesky_solve(W64, torch.linalg.cholesky(K))
    else:
        A = W64.T @ W64
        A.diagonal().add_(gamma / rho)
        M = torch.cholesky_solve(W64.T, torch.linalg.cholesky(A)).T
    R = T - b if b is not None else T.clone()
    R = torch.addmm(R, P, W.T, alpha=-1.0)  # residual T - b - P W^T
    return torch.addmm(P, R, M.to(W.dtype))
