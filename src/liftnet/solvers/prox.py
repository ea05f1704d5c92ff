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
    gamma > 0.  The normal equations ``V (rho W^T W + gamma I) = rho (T - b) W + gamma P`` are
    solved with the d_in x d_in inverse formed once in float64 (Cholesky), or, when the layer
    narrows (2 d_out < d_in), through the Woodbury identity
    ``(rho W^T W + gamma I)^-1 = (I - W^T (gamma/rho I + W W^T)^-1 W) / gamma``, which costs
    O(N d_in d_out) instead of O(N d_in^2).  This is the activation update of Taylor et al.
    (a_l) and of Zeng et al. (V_{i-1}).
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
    base = P * gamma
    if b is not None:
        base.sub_(rho * (b @ W))
    rhs = torch.addmm(base, T, W, alpha=rho)  # rho (T - b) W + gamma P
    del base
    W64 = W.to(torch.float64)
    if 2 * d_out < d_in:
        K = W64 @ W64.T
        K.diagonal().add_(gamma / rho)
        MW = torch.cholesky_solve(W64, torch.linalg.cholesky(K)).to(W.dtype)  # (d_out, d_in)
        return torch.addmm(rhs, rhs @ W.T, MW, alpha=-1.0).div_(gamma)
    A = rho * (W64.T @ W64)
    A.diagonal().add_(gamma)
    A_inv = torch.cholesky_inverse(torch.linalg.cholesky(A)).to(W.dtype)
    return rhs @ A_inv
