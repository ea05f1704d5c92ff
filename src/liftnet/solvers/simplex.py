"""Simplex projection and the cross-entropy / simplex proximal step (paper 004, Appendix A)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["project_simplex", "simplex_ce_prox"]


def project_simplex(V: Tensor) -> Tensor:
    """Euclidean projection of each row of V onto the probability simplex.

    Return, row by row, ``argmin_z ||z - v||^2  s.t.  z >= 0, sum_i z_i = 1``; V: (N, p)
    (any leading dimensions; the simplex is along the last one), result of the same shape.
    Exact sort-based algorithm (Held et al. 1974; Duchi et al. 2008): with u the row sorted in
    decreasing order, ``rho = max{j : u_j > (sum_{i<=j} u_i - 1) / j}`` and
    ``z = max(v - (sum_{i<=rho} u_i - 1) / rho, 0)``.  Each row is first shifted by its
    largest entry (the projection is invariant to adding a constant to a row), so that the 1
    is not lost to rounding next to large values (1e8 in float32 gave a zero row).
    """
    if V.ndim == 0 or V.shape[-1] == 0:
        raise ValueError(f"V must have a non-empty last dimension, got shape {tuple(V.shape)}")
    p = V.shape[-1]
    V = V - V.amax(dim=-1, keepdim=True)
    U = torch.sort(V, dim=-1, descending=True).values
    css = U.cumsum(dim=-1) - 1.0
    j = torch.arange(1, p + 1, device=V.device)
    # the condition holds on a prefix 1..rho (always for j = 1); take its last index, which
    # is the definition and robust to rounding
    rho = torch.where(U * j > css, j, 0).amax(dim=-1, keepdim=True).clamp_min(1)
    theta = css.gather(-1, rho - 1) / rho.to(V.dtype)
    return (V - theta).clamp_min(0)


def _z_of_nu(U: Tensor, C: Tensor, nu: Tensor) -> Tensor:
    """``z_i(nu) = a/2 + sqrt((a/2)^2 + c_i)``, a = u_i + nu, c_i = y_i / (2 lam), stably.

    For a < 0 the equivalent ``c / (sqrt((a/2)^2 + c) - a/2)`` avoids cancellation; for c = 0
    both give ``max(0, a)``.  hypot avoids overflow of (a/2)^2.
    """
    h = 0.5 * (U + nu)
    r = torch.hypot(h, C.sqrt())
    return torch.where(h >= 0, h + r, C / (r - h))


def _nu_lower_appendix_a(Y: Tensor, U: Tensor, lam: float) -> Tensor:
    """Appendix A's lower bound on nu, corrected; -inf / NaN where it overflows.

    Appendix A sums the stationarity condition over *all* i, but for y_i = 0 it reads
    ``z_i = max(0, u_i + nu)``, not ``z_i = u_i + nu``: the multipliers of z_i >= 0 are dropped,
    and the paper's bound ``(1/p)(1 - 1^T u - 1^T y e^theta / (2 lam))`` is wrong whenever such
    a constraint is active.  Counterexample: y = e_1, u = e_1, p >= 2 give z* = e_1,
    nu* = -1/(2 lam), but theta = 0 and the bound is -1/(2 lam p) > nu*.  Its step
    ``z_i >= e^{-theta}`` also needs y_i = 1; for soft labels ``-y_i log z_i <= p* <= theta``
    only gives ``z_i >= e^{-theta / y_i}``.

    Corrected: sum the stationarity ``z_i - u_i - nu = y_i / (2 lam z_i)`` over
    I = {i : y_i > 0} only (k = |I|) and use ``z_i >= e^{-theta / y_i}`` there::

        k nu >= sum_I e^{-theta / y_i} - sum_I u_i - sum_I y_i e^{theta / y_i} / (2 lam),

    theta = 1^T y log k + lam ||z0 - u||^2 the objective at z0 = 1_I / k.
    """
    support = Y > 0
    k = support.sum(dim=1).to(Y.dtype)
    ksafe = k.clamp_min(1.0)
    z0 = support.to(Y.dtype) / ksafe.unsqueeze(1)
    theta = Y.sum(dim=1) * ksafe.log() + lam * (z0 - U).square().sum(dim=1)
    ratio = torch.where(support, theta.unsqueeze(1) / torch.where(support, Y, 1.0), 0.0)
    z_min = torch.where(support, torch.exp(-ratio), 0.0).sum(dim=1)
    penalty = torch.where(support, Y * torch.exp(ratio), 0.0).sum(dim=1) / (2.0 * lam)
    lower = (z_min - (U * support).sum(dim=1) - penalty) / ksafe
    return torch.where(k > 0, lower, -torch.inf)


def _nu_bracket(Y: Tensor, U: Tensor, lam: float) -> tuple[Tensor, Tensor]:
    """Per-row bracket ``lo <= nu* <= hi`` with ``sum z(lo) <= 1 <= sum z(hi)`` (float64 in).

    Upper bound (Appendix A, correct): z* <= 1 and stationarity ``z_i = u_i + nu + y_i/(2 lam
    z_i)`` give ``nu <= 1 - max_i(u_i + y_i/(2 lam))``; at that nu the maximising coordinate
    equals exactly 1, so ``sum z(hi) >= 1``.

    Lower bound: the larger of two valid bounds, (a) the corrected bound of Appendix A
    (:func:`_nu_lower_appendix_a`; the paper's own is wrong), used where it is finite (its
    e^theta overflows as soon as ||u|| is large), and (b) one that is always finite: at
    ``nu = -max_i u_i - s`` with ``s = 1^T y / (2 lam)``, every ``a_i = u_i + nu <= -s``, so
    ``z_i = c_i / (sqrt(a_i^2/4 + c_i) + |a_i|/2) < c_i / s`` (c_i = y_i / (2 lam)) and z_i = 0
    where y_i = 0, hence ``sum z < sum c_i / s = 1``.  (If s = 0 every z_i is 0.)
    """
    C = Y / (2.0 * lam)
    hi = 1.0 - (U + C).max(dim=1).values
    lo = -U.max(dim=1).values - C.sum(dim=1)
    appendix = _nu_lower_appendix_a(Y, U, lam)
    lo = torch.where(torch.isfinite(appendix) & (appendix > lo), appendix, lo)
    return lo, torch.maximum(hi, lo)


def simplex_ce_prox(
    Y: Tensor, U: Tensor, lam: float, *, tol: float = 1e-12, max_iter: int = 200
) -> Tensor:
    """Cross-entropy proximal step onto the simplex (paper 004 (15)/(16), Appendix A).

    Return, row by row::

        argmin_Z  -sum_ij Y_ij log Z_ij + lam ||Z - U||_F^2   s.t.  Z >= 0, Z 1 = 1

    Y: (N, p) non-negative (rows of one-hot or soft labels; rows need not sum to 1), U: (N, p),
    lam > 0; returns Z: (N, p) in the promoted dtype of Y and U (0 log 0 = 0).

    Dual method of Appendix A, vectorised over rows: stationarity gives, for a multiplier nu
    per row, ``z_i(nu) = (u_i + nu)/2 + sqrt(((u_i + nu)/2)^2 + y_i/(2 lam))`` (which is
    ``max(0, u_i + nu)`` where y_i = 0), and nu solves ``sum_i z_i(nu) = 1``.  ``sum z(nu)`` is
    increasing and convex in nu; it is solved in float64 inside the bracket of
    :func:`_nu_bracket` by bisection safeguarded with Newton steps (a Newton step is taken when
    it stays strictly inside the current bracket, otherwise the midpoint), per row until
    ``|sum z - 1| <= tol`` or the bracket / step is at rounding level, at most ``max_iter``
    iterations.

    Raises:
        ValueError: lam <= 0, shapes differ, or Y has negative entries.
    """
    if not lam > 0:
        raise ValueError(f"lam must be > 0, got {lam}")
    if Y.shape != U.shape or U.ndim != 2:
        raise ValueError(f"Y and U must both be (N, p), got {tuple(Y.shape)} and {tuple(U.shape)}")
    if bool((Y < 0).any()):
        raise ValueError("Y must be non-negative")
    out_dtype = torch.promote_types(Y.dtype, U.dtype)
    if U.shape[0] == 0 or U.shape[1] == 0:
        return U.to(out_dtype).clone()
    Y64, U64 = Y.to(torch.float64), U.to(torch.float64)
    C = Y64 / (2.0 * lam)
    lo, hi = _nu_bracket(Y64, U64, lam)
    eps = torch.finfo(torch.float64).eps
    nu = hi.clone()
    active = torch.ones_like(nu, dtype=torch.bool)
    for _ in range(max_iter):
        z = _z_of_nu(U64, C, nu.unsqueeze(1))
        f = z.sum(dim=1) - 1.0
        lo = torch.where(active & (f < 0), nu, lo)
        hi = torch.where(active & (f > 0), nu, hi)
        # d z_i / d nu = z_i / (2 r_i) = z_i / (2 z_i - (u_i + nu)); 1{u_i + nu > 0} where y_i = 0
        a = U64 + nu.unsqueeze(1)
        denom = 2.0 * z - a
        dz = torch.where(denom > 0, z / denom, (a > 0).to(z.dtype))
        df = dz.sum(dim=1)
        newton = nu - f / df
        inside = (df > 0) & (newton > lo) & (newton < hi)
        nu_new = torch.where(inside, newton, 0.5 * (lo + hi))
        small = eps * (1.0 + nu.abs())
        done = (f.abs() <= tol) | (hi - lo <= 4 * small) | ((nu_new - nu).abs() <= small)
        active = active & ~done
        if not bool(active.any()):
            break
        nu = torch.where(active, nu_new, nu)
    return _z_of_nu(U64, C, nu.unsqueeze(1)).to(out_dtype)
