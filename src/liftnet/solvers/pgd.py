"""A small accelerated projected-gradient routine (FISTA with adaptive restart).

Beck & Teboulle (2009) FISTA; restart scheme of O'Donoghue & Candes (2015).  The variable is a
Tensor or a list of Tensors (one block variable, e.g. all hidden layers of the lifted prediction
rule, paper 004 (12)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["APGResult", "apg", "lipschitz_sym"]

Variable = Tensor | list[Tensor]

# beyond this size lipschitz_sym uses power iteration instead of a full eigendecomposition
_EIGVALSH_MAX_DIM = 4096


@dataclass(eq=False)
class APGResult:
    """Result of :func:`apg`.

    Attributes:
        x: the solution, of the same structure as ``x0`` (Tensor or list of Tensors).
        iterations: number of projected-gradient steps taken.
        residual: the scaled projected-gradient residual at ``x`` (see :func:`apg`).
        converged: ``residual <= tol``.
    """

    x: Variable
    iterations: int
    residual: float
    converged: bool


def lipschitz_sym(H: Tensor) -> float:
    """Largest eigenvalue of a symmetric positive semi-definite matrix H (d, d).

    Uses ``torch.linalg.eigvalsh`` for d <= 4096 and, beyond, 100 power iterations from a
    fixed-seed start whose estimate is inflated by 1 % (power iteration approaches the largest
    eigenvalue from below, and an upper bound is what a step size needs).  Negative values (a
    PSD matrix with rounding errors) are clamped to 0.
    """
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"H must be a square (d, d) matrix, got {tuple(H.shape)}")
    d = H.shape[0]
    if d == 0:
        return 0.0
    if d <= _EIGVALSH_MAX_DIM:
        return max(float(torch.linalg.eigvalsh(H)[-1]), 0.0)
    gen = torch.Generator(device=H.device).manual_seed(0)
    v = torch.randn(d, generator=gen, device=H.device, dtype=H.dtype)
    v = v / v.norm()
    est = 0.0
    for _ in range(100):
        w = H @ v
        new = float(v @ w)
        nrm = w.norm()
        if float(nrm) == 0.0:
            return 0.0
        v = w / nrm
        if abs(new - est) <= 1e-6 * abs(new):
            est = new
            break
        est = new
    return max(est, 0.0) * 1.01


def _as_list(x: Variable) -> tuple[list[Tensor], bool]:
    if isinstance(x, Tensor):
        return [x], True
    return list(x), False


def _dot(a: list[Tensor], b: list[Tensor]) -> float:
    return float(sum(torch.dot(ai.reshape(-1), bi.reshape(-1))
                     for ai, bi in zip(a, b, strict=True)))


def _norm(a: list[Tensor]) -> float:
    return math.sqrt(sum(float(torch.linalg.vector_norm(ai)) ** 2 for ai in a))


def apg(
    grad_fn: Callable[[Variable], Variable],
    project_fn: Callable[[Variable], Variable],
    x0: Variable,
    lipschitz: float,
    *,
    objective_fn: Callable[[Variable], float | Tensor] | None = None,
    tol: float = 1e-6,
    max_iter: int = 1000,
    strong_convexity: float = 0.0,
) -> APGResult:
    """Minimise a smooth convex f over a convex set C by accelerated projected gradient.

    Solves ``min_{x in C} f(x)`` given ``grad_fn(x) = grad f(x)`` (same structure as x),
    ``project_fn(x)`` = the Euclidean projection onto C, and L = ``lipschitz`` >= the Lipschitz
    constant of grad f.  x is a Tensor or a list of Tensors, treated as one block variable
    (inner products and norms sum over the list).

    Method: FISTA with step 1/L started at ``P(x0)``; momentum is reset (gradient restart of
    O'Donoghue & Candes) when ``<y - x+, x+ - x> > 0`` and, if ``objective_fn`` is given, also
    when ``f(x+) > f(x)`` (function restart).  With ``strong_convexity`` mu > 0 (f is
    mu-strongly convex) the momentum is the constant (1 - sqrt(mu/L)) / (1 + sqrt(mu/L)) of
    Nesterov's scheme for strongly convex functions, linear convergence at the rate
    1 - sqrt(mu/L), instead of FISTA's (t_k - 1) / t_{k+1}; the restarts stay.

    Stopping rule: the projected-gradient residual::

        r(x) = ||x - P(x - grad f(x) / L)|| * L / max(1, ||grad f(P(x0))||)

    is at most ``tol``, or ``max_iter`` steps.  One gradient evaluation per step: the residual
    comes for free at the extrapolated point y; when it is below tol there the momentum is reset,
    so that the next step evaluates it exactly at x, and only an exact residual at x stops the
    loop.  The reported residual is always that of the returned x.

    Args:
        grad_fn: gradient of f.
        project_fn: projection onto C.
        x0: starting point (projected onto C first).
        lipschitz: L > 0.
        objective_fn: optional f, enables function restart.
        tol: tolerance on r.
        max_iter: maximum number of steps.
        strong_convexity: mu >= 0, a lower bound on f's modulus of strong convexity (0: none
            known, FISTA's momentum).

    Returns:
        APGResult(x, iterations, residual, converged).
    """
    if not lipschitz > 0 or not math.isfinite(lipschitz):
        raise ValueError(f"lipschitz must be finite and > 0, got {lipschitz}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter}")
    if not strong_convexity >= 0 or not math.isfinite(strong_convexity):
        raise ValueError(f"strong_convexity must be finite and >= 0, got {strong_convexity}")
    _, single = _as_list(x0)

    def wrap(v: list[Tensor]) -> Variable:
        return v[0] if single else v

    def grad(v: list[Tensor]) -> list[Tensor]:
        return _as_list(grad_fn(wrap(v)))[0]

    def proj(v: list[Tensor]) -> list[Tensor]:
        return _as_list(project_fn(wrap(v)))[0]

    def obj(v: list[Tensor]) -> float:
        return float(objective_fn(wrap(v)))  # type: ignore[misc]

    inv_l = 1.0 / lipschitz
    momentum = None
    if strong_convexity > 0:
        q = math.sqrt(min(strong_convexity / lipschitz, 1.0))
        momentum = (1.0 - q) / (1.0 + q)
    x = proj(_as_list(x0)[0])
    f_x = obj(x) if objective_fn is not None else 0.0
    y, y_is_x, t = x, True, 1.0
    scale = None
    residual = math.inf
    it = 0
    while True:
        gy = grad(y)
        if scale is None:
            scale = max(1.0, _norm(gy))
        x_new = proj([torch.add(yi, gi, alpha=-inv_l) for yi, gi in zip(y, gy, strict=True)])
        step = [yi - xi for yi, xi in zip(y, x_new, strict=True)]
        r_y = _norm(step) * lipschitz / scale
        if y_is_x:
            residual = r_y  # exact residual of x
            if r_y <= tol:
                return APGResult(wrap(x), it, residual, True)
        if it >= max_iter:
            break
        it += 1
        move = [a - b for a, b in zip(x_new, x, strict=True)]  # x+ - x
        restart = r_y <= tol or _dot(step, move) > 0
        if objective_fn is not None:
            f_new = obj(x_new)
            restart = restart or f_new > f_x
            f_x = f_new
        if restart:
            x, y, y_is_x, t = x_new, x_new, True, 1.0
        else:
            t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
            beta = (t - 1.0) / t_new if momentum is None else momentum
            y = [torch.add(a, d, alpha=beta) for a, d in zip(x_new, move, strict=True)] \
                if beta else x_new
            x, y_is_x, t = x_new, beta == 0.0, t_new
    # max_iter reached with momentum: one more gradient for the exact residual of x
    if not y_is_x:
        gx = grad(x)
        px = proj([xi - inv_l * gi for xi, gi in zip(x, gx, strict=True)])
        residual = _norm([a - b for a, b in zip(x, px, strict=True)]) * lipschitz / scale
    return APGResult(wrap(x), it, residual, residual <= tol)
