"""Regression through a smooth convex function of the outputs, by majorisation-minimisation
with one shared matrix (the W-steps of the Fenchel lifted network, paper 003 (17)-(20)).

Problem, rows-first::

    min_{W, b}  phi(P W^T + 1 b^T) + g_w ||W - W0||^2 + g_b ||b - b0||^2 + rho ||W||^2

with P (R, d) the design rows, W (m, d), b (m,), and phi convex with curvature at most
``curvature`` in every direction of its (R, m) argument (grad phi ``curvature``-Lipschitz).
Examples: phi(U) = 2 lam B(T, U) = lam sum (relu(U)^2 - 2 U T) (curvature 2 lam, a "rectified
least squares" separable by output unit), c CE(Y, U) summed over rows (curvature c / 2,
Boehning's bound on the softmax Hessian), c ||U - Y||^2 (curvature 2 c, exact).

Every unit's Hessian is at most ``H = curvature A^T A + 2 diag(g_w + rho, ..., g_b)`` with
A = [P, 1], one (d+1) x (d+1) matrix for all units, so the step
``Theta <- Y - grad(Y) H^{-1}`` minimises a quadratic upper bound of the objective; FISTA
momentum with gradient restart accelerates it.  For quadratic phi with its exact curvature
the first step is the exact minimiser (up to the tiny ridge :func:`mm_precision` adds).
Stopping rule: the step's relative size
``||Theta_new - Y||_F / max(||Theta_new||_F, 1e-12) <= tol`` at a point without momentum, or
``max_iter`` steps.  The returned point is never worse than the start (by the objective).

The design enters only through the linear map ``(W, b) -> A Theta^T`` and its adjoint, so it may
be given as the rows P or as a :class:`Design` that computes them another way, in the layout it
likes (a convolution: ``conv2d`` on the images, outputs channel-major, 2-3x faster than the
products with its im2col rows); ``grad_u`` and ``value_u`` then take that layout.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

__all__ = ["Design", "MMResult", "RowDesign", "augmented_gram", "mm_precision", "mm_regression"]


class Design(Protocol):
    """The design of a regression as a linear map: ``rows`` is the matrix P (R, d) (for the
    Gram matrix), ``apply(W, b)`` the outputs P W^T + 1 b^T in the design's own layout (any
    arrangement of the same R x m numbers), ``adjoint(G)`` the pair (G^T P, G^T 1) for a G in
    that layout, i.e. the gradient of <G, apply(W, b)> in W (m, d) and b (m,); ``signed``
    whether the rows have negative entries (None: unknown; see :func:`augmented_gram`)."""

    rows: Tensor
    signed: bool | None

    def apply(self, W: Tensor, b: Tensor) -> Tensor: ...

    def adjoint(self, G: Tensor) -> tuple[Tensor, Tensor]: ...


class RowDesign:
    """The design rows P (R, d) themselves: outputs (R, m)."""

    def __init__(self, P: Tensor) -> None:
        self.rows, self.signed = P, None

    def apply(self, W: Tensor, b: Tensor) -> Tensor:
        return torch.addmm(b, self.rows, W.T)

    def adjoint(self, G: Tensor) -> tuple[Tensor, Tensor]:
        return G.T @ self.rows, G.sum(0)


@dataclass(eq=False)
class MMResult:
    """Result of :func:`mm_regression`: weights, bias, steps taken, last relative step."""

    W: Tensor
    b: Tensor
    iterations: int
    step: float
    converged: bool
    rejected: bool = False  # the iterates ended above the start (or non-finite): start kept


def augmented_gram(P: Tensor, chunk: int = 4096, signed: bool | None = None) -> Tensor:
    """A^T A for A = [P, 1], (d+1, d+1) in float64, accumulated over chunks of rows.

    A chunk of non-negative float32 rows (im2col patches of images or of ReLU activations) is
    multiplied in float32, which cannot cancel: every entry is exact to about 1e-7 of itself,
    so the matrix is to about 1e-7 of its largest eigenvalue; the chunks are summed in float64.
    That is 2-4x faster than float64 for a convolution's R = 392,000 rows (LeNet-5's first
    layer at a batch of 500).  Rows of both signs (standardised inputs, tanh activations) are
    multiplied in float64: in float32 their cancellations lose small eigenvalues (-2e-3 on
    standardised MNIST), and the MM steps built on the matrix then stop being majorisations.
    ``signed``: whether P has negative entries, where the caller knows it more cheaply (e.g.
    from the images a convolution's rows are copied from); None: read from P.
    """
    d = P.shape[1]
    G = torch.zeros(d + 1, d + 1, dtype=torch.float64, device=P.device)
    if P.dtype == torch.float64:
        signed = False  # multiplied in float64 anyway
    elif signed is None:
        signed = bool((P < 0).any())
    for i in range(0, len(P), chunk):
        rows = P[i : i + chunk].double() if signed else P[i : i + chunk]
        G[:d, :d] += (rows.T @ rows).double()
        s = rows.sum(0, dtype=torch.float64)
        G[:d, d] += s
        G[d, :d] += s
        G[d, d] += len(rows)
    return G


def mm_precision(gram: Tensor, curvature: float, g_w: float, g_b: float, rho: float) -> Tensor:
    """H^{-1} for H = curvature * gram + 2 diag(g_w + rho, ..., g_b) (float64 in, float64 out).

    A tiny ridge (1e-10 of the largest diagonal entry) keeps H invertible when the design has
    constant-zero columns and no proximal or weight-decay term (the gradient is zero there)."""
    d = gram.shape[0] - 1
    H = curvature * gram
    diag = torch.full((d + 1,), 2.0 * (g_w + rho), dtype=H.dtype, device=H.device)
    diag[d] = 2.0 * g_b
    H = H + torch.diag(diag)
    jitter = 1e-10 * float(H.diagonal().abs().max()) + 1e-300
    H.diagonal().add_(jitter)
    L, info = torch.linalg.cholesky_ex(H)
    if int(info) != 0:
        return torch.linalg.pinv(H, hermitian=True)
    return torch.cholesky_inverse(L)


def mm_regression(
    P: Tensor | Design,
    grad_u: Callable[[Tensor], Tensor],
    value_u: Callable[[Tensor], float],
    W: Tensor,
    b: Tensor,
    precision: Tensor,
    *,
    W0: Tensor | None = None,
    b0: Tensor | None = None,
    g_w: float = 0.0,
    g_b: float = 0.0,
    rho: float = 0.0,
    tol: float = 1e-4,
    max_iter: int = 50,
    U: Tensor | None = None,
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> MMResult:
    """Solve the problem of the module docstring from (W, b).

    Args:
        P: design rows (R, d), or a :class:`Design` (outputs U and gradients in its layout).
        grad_u: U (R, m) -> grad phi(U) (R, m).
        value_u: U -> phi(U) (a float), used only to keep the result no worse than the
            start: evaluate it in float64 (a float32 sum over many rows cannot see the
            small improvements of a step near its start, and the step is then refused).
        W, b: starting point, (m, d) and (m,).
        precision: H^{-1} from :func:`mm_precision` (float64, (d+1, d+1)).
        W0, b0: centres of the proximal terms (default: the starting point).
        g_w, g_b, rho: proximal weights on W and b, weight decay on W (all >= 0).
        tol, max_iter: stopping rule (module docstring).
        U: the outputs P W^T + 1 b^T of the start, where the caller already has them.
        reduce: sums over design rows held by other processes (distributed training: P is
            this process's share of the rows and ``precision`` was made from the summed Gram
            matrix); applied to the gradient's data part and to phi's value.
    """
    W0 = W if W0 is None else W0
    b0 = b if b0 is None else b0
    design = RowDesign(P) if isinstance(P, Tensor) else P

    def total(Wc: Tensor, bc: Tensor, U: Tensor) -> float:
        out = value_u(U)
        if reduce is not None:
            out = float(reduce(torch.tensor(out, dtype=torch.float64, device=U.device)))
        if g_w:
            out += g_w * float(torch.linalg.vector_norm(Wc - W0)) ** 2
        if g_b:
            out += g_b * float(torch.linalg.vector_norm(bc - b0)) ** 2
        if rho:
            out += rho * float(torch.linalg.vector_norm(Wc)) ** 2
        return out

    theta = torch.cat([W, b[:, None]], dim=1)
    U = design.apply(W, b) if U is None else U
    f_start = total(W, b, U)
    d = W.shape[1]

    def run(exact: bool) -> tuple[Tensor, Tensor, int, float, bool]:
        """The accelerated MM iterations from the start; ``exact``: each step's product with
        H^{-1} in float64 (the precision cast to the rows' dtype otherwise)."""
        Hinv = precision if exact else precision.to(design.rows.dtype)
        x, Ux = theta, U
        y, y_is_x, t = x, True, 1.0
        Uy = Ux  # the outputs at y: U's extrapolation like y's (linear in theta), not a product
        step_rel, it, converged = math.inf, 0, False
        while it < max_iter:
            Wy, by = y[:, :d], y[:, d]
            gW, gb = design.adjoint(grad_u(Uy))
            grad = torch.cat([gW, gb[:, None]], dim=1)
            if reduce is not None:
                grad = reduce(grad)
            if g_w or rho:
                grad[:, :d] += 2.0 * g_w * (Wy - W0) + 2.0 * rho * Wy
            if g_b:
                grad[:, d] += 2.0 * g_b * (by - b0)
            move = (grad.to(Hinv.dtype) @ Hinv).to(y.dtype)
            new = y - move
            it += 1
            step_rel = float(torch.linalg.vector_norm(new - y)) / max(
                float(torch.linalg.vector_norm(new)), 1e-12)
            U_new = design.apply(new[:, :d], new[:, d])
            if y_is_x and step_rel <= tol:
                x, Ux, converged = new, U_new, True
                break
            restart = step_rel <= tol or float(((y - new) * (new - x)).sum()) > 0
            if restart:
                x, Ux, y, Uy, y_is_x, t = new, U_new, new, U_new, True, 1.0
            else:
                t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
                beta = (t - 1.0) / t_new
                if beta:
                    y = new + beta * (new - x)
                    Uy = torch.lerp(Ux, U_new, 1.0 + beta)  # U_new + beta (U_new - U), one pass
                else:
                    y, Uy = new, U_new
                x, Ux, y_is_x, t = new, U_new, beta == 0.0, t_new
        return x, Ux, it, step_rel, converged

    # a float32 design takes float32 steps; where H is too ill-conditioned for that (the
    # iterates diverge, or end above the start) the solve is redone with float64 steps
    exact = precision.dtype == design.rows.dtype or precision.dtype != torch.float64
    x, Ux, it, step_rel, converged = run(exact)
    Wn, bn = x[:, :d].contiguous(), x[:, d].contiguous()
    if not exact and not total(Wn, bn, Ux) <= f_start:
        x, Ux, more, step_rel, converged = run(True)
        it += more
        Wn, bn = x[:, :d].contiguous(), x[:, d].contiguous()
    rejected = not total(Wn, bn, Ux) <= f_start  # (also when a value is NaN)
    if rejected:  # a precision that is no majoriser (e.g. rounded small eigenvalues)
        Wn, bn = theta[:, :d].contiguous(), theta[:, d].contiguous()
    return MMResult(Wn, bn, it, step_rel, converged, rejected)
