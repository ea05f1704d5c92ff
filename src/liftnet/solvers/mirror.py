"""Bregman proximal gradient with an activation's own potential as the distance.

Problem, element-wise in Z (N, d)::

    min_{Z in dom F}  h(Z) = w (F(Z) - <U, Z>) + g(Z),

with F a Legendre potential of an activation sigma (F' = sigma^{-1}, e.g. the negative entropy
of the sigmoid, v log v + (1 - v) log(1 - v) on [0, 1]) and g convex and smooth *relative to F*:
``g(Z') <= g(Z) + <grad g(Z), Z' - Z> + L D_F(Z', Z)`` with D_F the Bregman distance of F.  If
g is L_e-smooth in the Euclidean sense and F is mu-strongly convex (sigma is 1/mu-Lipschitz),
L = L_e / mu will do.  This is the Fenchel X-step (paper 003 (14)) for an activation whose
sigma^{-1} is unbounded at the ends of its range (sigmoid, tanh): there ``h`` has no
Lipschitz gradient and Euclidean projected gradient does not apply.

Step (Bauschke, Bolte and Teboulle 2017, "NoLips"): ``Z+ = argmin <grad g(Z), Z'> +
w (F(Z') - <U, Z'>) + L D_F(Z', Z)``, in closed form through the mirror coordinates
V = F'(Z) = sigma^{-1}(Z)::

    V+ = (w U + L V - grad g(sigma(V))) / (w + L),     Z+ = sigma(V+).

h decreases at every step, and since h - w F is convex (h is w-strongly convex relative to F)
the gap shrinks at least by the factor 1 - w / (w + L) per step.  Z stays in the interior of
dom F, where sigma^{-1} is finite: the iteration needs sigma only.  Stopping rule: the gradient
of h at the new point, ``||w (V+ - U) + grad g(Z+)|| / max(1, ||grad h(Z0)||) <= tol`` (h is
differentiable in the interior, where every iterate lies; grad g(Z+) is the next step's
gradient, so the test costs no extra gradient), or ``max_iter`` steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["MirrorResult", "bregman_gradient"]


@dataclass(eq=False)
class MirrorResult:
    """Result of :func:`bregman_gradient`: the point Z, its mirror coordinates V = F'(Z), the
    steps taken, the scaled gradient norm of h at Z and whether it met ``tol``."""

    x: Tensor
    v: Tensor
    iterations: int
    residual: float
    converged: bool


def bregman_gradient(
    grad_g: Callable[[Tensor], Tensor],
    link: Callable[[Tensor], Tensor],
    U: Tensor,
    V0: Tensor,
    weight: float,
    smoothness: float,
    *,
    value_g: Callable[[Tensor], float] | None = None,
    conjugate: Callable[[Tensor], Tensor] | None = None,
    tol: float = 1e-6,
    max_iter: int = 1000,
) -> MirrorResult:
    """Minimise ``weight (F(Z) - <U, Z>) + g(Z)`` from Z0 = link(V0) (module docstring).

    Args:
        grad_g: Z (N, d) -> grad g(Z) (N, d).
        link: sigma, the map from mirror coordinates to Z (F' = sigma^{-1}).
        U: the linear term's coefficient (N, d) (the Fenchel X-step: the pre-activation).
        V0: the start in mirror coordinates, sigma^{-1}(Z0) (N, d), finite.
        weight: w > 0.
        smoothness: L > 0, g's smoothness relative to F (a global bound).
        value_g, conjugate: g(Z) (a float, summed in float64) and F* element-wise (F*' =
            sigma, so that D_F(Z+, Z) = F*(V) - F*(V+) + <Z+, V+ - V> in mirror
            coordinates, without F or sigma^{-1}).  With both (until the test's terms fall to
            the rounding level of g's value, from where the global bound is used),
            every step first tries a smaller L (halved after each accepted step) and keeps it
            if the relative-smoothness inequality ``g(Z+) <= g(Z) + <grad g(Z), Z+ - Z> +
            L D_F(Z+, Z)`` holds at the new point, else doubles it (at most to
            ``smoothness``, where it always holds): the same descent at every step, with the
            local instead of the worst-case curvature.
        tol, max_iter: stopping rule.
    """
    for name, value in (("weight", weight), ("smoothness", smoothness)):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be finite and > 0, got {value}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter}")
    adaptive = value_g is not None and conjugate is not None
    w, L_max = float(weight), float(smoothness)
    L = L_max
    V, Z = V0, link(V0)
    G = grad_g(Z)
    g_val = value_g(Z) if adaptive else 0.0
    conj = conjugate(V.double()) if adaptive else None  # F*(V), float64
    # grad h(Z) = w (V - U) + grad g(Z) in Z's coordinates; its norm at Z0 is the scale
    scale = max(1.0, float(torch.linalg.vector_norm(torch.sub(V, U).mul_(w).add_(G))))
    residual, it = math.inf, 0
    noise = 100.0 * torch.finfo(Z.dtype).eps  # relative rounding of g's value
    while it < max_iter:
        if adaptive:
            L = max(L / 2.0, L_max * 1e-6)
        while True:
            # V+ = V + (w (U - V) - G) / (w + L): no large intermediate for a large V or L / w
            V_new = torch.sub(U, V).mul_(w).sub_(G).div_(w + L).add_(V)
            Z_new = link(V_new)
            if not adaptive or L >= L_max:
                break
            g_new = value_g(Z_new)
            V_new64 = V_new.double()
            conj_new = conjugate(V_new64)  # D_F(Z+, Z) in mirror coordinates, float64
            d_f = float(torch.sum(conj - conj_new + Z_new.double() * (V_new64 - V.double())))
            linear = float(torch.sum(G.double() * (Z_new - Z).double()))
            if abs(linear) + L * d_f <= noise * abs(g_val):
                # the predicted change is at the rounding level of g's value: the test cannot
                # tell, so the remaining steps take the global bound (always a descent)
                adaptive, L = False, L_max
                continue
            if g_new <= g_val + linear + L * d_f:
                break
            L = min(2.0 * L, L_max)
        it += 1
        G_new = grad_g(Z_new)
        # grad h(Z+) = w (V+ - U) + grad g(Z+): the optimality residual, in the coordinates of
        # Z (a small move of a saturated Z with a large gradient does not pass for convergence)
        residual = float(torch.linalg.vector_norm(
            torch.sub(V_new, U).mul_(w).add_(G_new))) / scale
        if adaptive and L < L_max:
            g_val, conj = g_new, conj_new
        elif adaptive:  # accepted without the test
            g_val, conj = value_g(Z_new), conjugate(V_new.double())
        V, Z, G = V_new, Z_new, G_new
        if residual <= tol:
            return MirrorResult(Z, V, it, residual, True)
    return MirrorResult(Z, V, it, residual, residual <= tol)
