"""Proximal activations and the Bregman penalty of lifted Bregman training (paper 001).

An activation sigma is the proximal map of a proper, closed, convex Psi:

    sigma(z) = prox_Psi(z) = argmin_x 1/2 ||x - z||^2 + Psi(x),

equivalently sigma = (grad Phi*) with Phi = 1/2 ||.||^2 + Psi, so sigma^{-1} = I + d Psi and Phi
is the potential ``Activation.potential`` (Phi(v) = int_0^v sigma^{-1}).  The Bregman penalty
(paper 001 (3)) is the Fenchel-type gap

    L_Psi(y, z) = 1/2 ||y||^2 + Psi(y) + (1/2 ||.||^2 + Psi)^*(z) - <y, z>
                = Phi(y) + Phi^*(z) - <y, z>  >= 1/2 ||y - sigma(z)||^2 >= 0,

zero exactly when y = sigma(z), with grad_z L_Psi(y, z) = sigma(z) - y: no derivative of the
activation is ever needed.  For ReLU it is the Fenchel gap B of paper 003 ((5)).

The activations (Psi, sigma, domain dom Psi):

============== ================================================ ==================== ========
name           Psi(x)                                           sigma(z)             domain
============== ================================================ ==================== ========
relu           indicator of x >= 0                              max(z, 0)            [0, inf)
leaky_relu     (1/alpha - 1) min(x, 0)^2 / 2                    max(alpha z, z)      R
hardtanh       indicator of -1 <= x <= 1                        clip(z, -1, 1)       [-1, 1]
soft_threshold alpha |x|                                        sign(z)(|z|-alpha)_+ R
sigmoid        x log x + (1-x) log(1-x) - x^2/2                 1 / (1 + e^-z)       [0, 1]
tanh           ((1+x)log(1+x) + (1-x)log(1-x))/2 - x^2/2        tanh(z)              [-1, 1]
identity       0                                                z                    R
softmax        sum_i x_i log x_i - ||x||^2/2 + ind(simplex)     softmax(z) (rows)    simplex
============== ================================================ ==================== ========

For softmax, L_Psi(y, z) = sum y log y + logsumexp(z) - <y, z>: the cross-entropy of a one-hot
(or any probability) row y.  Tensors are batch first; :func:`bregman_loss` sums per sample.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .activations import ACTIVATIONS, Activation, get_activation
from .divergences import conjugate

#: built-in activations that are proximal maps, usable by lifted Bregman training
PROX_ACTIVATIONS = ("relu", "leaky_relu", "hardtanh", "soft_threshold", "sigmoid", "tanh",
                    "identity", "softmax")
#: activations whose prox of mu * Phi is found by safeguarded Newton (the others: closed forms)
_NEWTON = ("sigmoid", "tanh")


def is_proximal(act: Activation) -> bool:
    """Whether a registered activation is a proximal activation lifted Bregman training can
    use: element-wise, with its potential Phi (``_phi``) and Phi* (``conjugate``) defined
    (the penalty) and a slope sup sigma' <= 1 (then Psi = Phi - ||.||^2 / 2 is convex and
    sigma = prox_Psi; the X-step's prox is found from sigma and the slope,
    :func:`prox_psi`)."""
    cls = type(act)
    return (act.elementwise and cls.conjugate is not Activation.conjugate
            and cls._phi is not Activation._phi
            and isinstance(act.slope, (int, float)) and 0 < act.slope <= 1)


def prox_activations() -> tuple[str, ...]:
    """The built-in proximal activations and the registered ones :func:`is_proximal` accepts."""
    extra = tuple(n for n, a in ACTIVATIONS.items() if n not in PROX_ACTIVATIONS
                  and is_proximal(a))
    return (*PROX_ACTIVATIONS, *extra)


def _check(name: str) -> None:
    if name in PROX_ACTIVATIONS:
        return
    if name not in ACTIVATIONS or not is_proximal(ACTIVATIONS[name]):
        raise ValueError(f"activation {name!r} is not a proximal activation here; choose one of "
                         f"{', '.join(prox_activations())}")


def sigma(name: str, z: Tensor) -> Tensor:
    """The activation prox_Psi(z) (softmax over the last dimension)."""
    _check(name)
    if name == "softmax":
        return torch.softmax(z, -1)
    return get_activation(name).map(z)


def psi(name: str, x: Tensor) -> Tensor:
    """Psi(x) element-wise (row-wise for softmax: shape x.shape[:-1]), +inf outside dom Psi."""
    _check(name)
    if name == "softmax":
        inside = (x >= 0).all(-1) & ((x.sum(-1) - 1).abs() <= math.sqrt(torch.finfo(x.dtype).eps))
        val = torch.xlogy(x, x).sum(-1) - 0.5 * (x * x).sum(-1)
        return torch.where(inside, val, torch.full_like(val, math.inf))
    return get_activation(name).potential(x) - 0.5 * x * x


def phi_conjugate(name: str, z: Tensor) -> Tensor:
    """(1/2 ||.||^2 + Psi)^*(z) = Phi^*(z) element-wise (row-wise logsumexp for softmax)."""
    _check(name)
    if name == "softmax":
        return torch.logsumexp(z, -1)
    return conjugate(name, z)


def bregman_gap(name: str, y: Tensor, z: Tensor) -> Tensor:
    """L_Psi(y, z) = Phi(y) + Phi^*(z) - <y, z> element-wise (row-wise for softmax), +inf where
    y is outside dom Psi, clamped at 0 against rounding."""
    if name == "softmax":
        inside = psi(name, y).isfinite()
        val = torch.xlogy(y, y).sum(-1) + torch.logsumexp(z, -1) - (y * z).sum(-1)
        val = torch.where(inside, val, torch.full_like(val, math.inf))
    else:
        _check(name)
        val = get_activation(name).potential(y) + conjugate(name, z) - y * z
    return torch.where(torch.isinf(val), val, val.clamp_min(0.0))


def bregman_loss(name: str, Y: Tensor, Z: Tensor) -> Tensor:
    """L_Psi(Y, Z) summed over all but the batch dimension: (N, ...) -> (N,)."""
    gap = bregman_gap(name, Y, Z)
    return gap.reshape(gap.shape[0], -1).sum(1)


def bregman_grad_z(name: str, Y: Tensor, Z: Tensor) -> Tensor:
    """grad_z L_Psi(Y, Z) = sigma(Z) - Y."""
    return sigma(name, Z) - Y


def prox_phi(name: str, v: Tensor, mu: float | Tensor) -> Tensor:
    """prox_{mu Phi}(v) = argmin_x mu (1/2 ||x||^2 + Psi(x)) + 1/2 ||x - v||^2, element-wise,
    = prox_{t Psi}(v / (1 + mu)) with t = mu / (1 + mu); it solves x + mu sigma^{-1}(x) = v.
    ``mu`` >= 0 is a number or a tensor broadcastable to v (per-sample or per-unit steps)."""
    return prox_psi(name, v / (1.0 + mu), mu / (1.0 + mu))


def prox_psi(name: str, w: Tensor, t: float | Tensor) -> Tensor:
    """prox_{t Psi}(w) = argmin_x t Psi(x) + 1/2 ||x - w||^2, element-wise (t >= 0); it solves
    (1 - t) x + t sigma^{-1}(x) = w (as sigma^{-1} = I + d Psi).

    Closed forms for the piecewise-linear activations; sigmoid and tanh by Newton's method
    safeguarded by bisection on the open domain (float64, to 1e-12 in x); a registered
    activation by a bracketing root search in sigma's own coordinate (:func:`_prox_generic`).
    """
    _check(name)
    if name == "relu":
        return w.clamp_min(0.0)
    if name == "identity":
        return w
    if name == "hardtanh":
        return w.clamp(-1.0, 1.0)
    if name == "soft_threshold":
        a = get_activation(name).alpha
        return torch.sign(w) * (w.abs() - t * a).clamp_min(0.0)
    if name == "leaky_relu":  # Psi = (1/alpha - 1) min(x, 0)^2 / 2
        a = get_activation(name).alpha
        return torch.where(w >= 0, w, w / (1.0 + t * (1.0 / a - 1.0)))
    if name in _NEWTON:
        return _prox_newton(name, w, t)
    if name not in PROX_ACTIVATIONS:
        act = get_activation(name)
        if act.box is not None:  # the projection onto a box: Psi its indicator
            lower, upper = act.box
            return w if lower is None and upper is None else w.clamp(lower, upper)
        return _prox_generic(act, w, t)
    raise ValueError("the prox of softmax's Psi is not implemented: softmax is an output "
                     "activation whose variable (the target) is clamped")


def _prox_newton(name: str, w: Tensor, t: float | Tensor) -> Tensor:
    """Solve g(x) = (1 - t) x + t sigma^{-1}(x) - w = 0 on the open domain (g' >= 1)."""
    wd = w.double()
    td = torch.as_tensor(t, dtype=torch.float64, device=w.device).expand_as(wd)
    if name == "sigmoid":
        lo, hi = torch.zeros_like(wd), torch.ones_like(wd)
        x = torch.sigmoid(wd)
        inv, dinv = torch.logit, lambda x: 1.0 / (x * (1.0 - x))
    else:
        lo, hi = -torch.ones_like(wd), torch.ones_like(wd)
        x = torch.tanh(wd)
        inv, dinv = torch.atanh, lambda x: 1.0 / (1.0 - x * x)
    for _ in range(100):
        g = (1.0 - td) * x + td * inv(x) - wd
        lo = torch.where(g < 0, x, lo)
        hi = torch.where(g > 0, x, hi)
        new = x - g / ((1.0 - td) + td * dinv(x))
        bad = ~((new > lo) & (new < hi)) | ~torch.isfinite(new)
        new = torch.where(bad, 0.5 * (lo + hi), new)
        done = bool(((new - x).abs() <= 1e-12).all())
        x = new
        if done:
            break
    return x.to(w.dtype)


def _prox_generic(act: Activation, w: Tensor, t: float | Tensor) -> Tensor:
    """prox_{t Psi}(w) for any activation :func:`is_proximal` accepts, from ``map`` and
    ``slope`` alone: x = sigma(u) with u the root of

        h(u) = (1 - t) sigma(u) + t u - w,

    i.e. (1 - t) x + t sigma^{-1}(x) = w in the activation's own coordinate u = sigma^{-1}(x),
    where h is smooth and t <= h' <= (1 - t) slope + t even where sigma^{-1} is infinite at
    the ends of the range.  From u0 = w the root lies between u0 - h(u0) / t and
    u0 - h(u0) / ((1 - t) slope + t); regula falsi with the Illinois modification (a
    superlinear bracketing method) finds it in float64 to |x - x*| <= 1e-12 max(1, |x|) or
    the rounding of h, as h(u) - h(u*) = (1 - t)(x - x*) + t (u - u*) with both terms of one
    sign bounds |x - x*| by |h(u)| / max(1 - t, t / slope).  t = 0, and a t so small that
    the bracket overflows, is the projection onto dom Phi (the limit).

    Raises ``ValueError`` if the bracket does not hold (``slope`` below sup sigma') or
    ``map`` is not finite where the search evaluates it.
    """
    wd = w.double()
    td = torch.as_tensor(t, dtype=torch.float64, device=w.device).expand_as(wd)
    slope = float(act.slope)
    eps = torch.finfo(torch.float64).eps
    ts = torch.where(td > 0, td, torch.ones_like(td))  # t <= 0 is answered below
    gain = torch.maximum(1.0 - ts, ts / slope)  # |x - x*| <= |h(u)| / gain

    def h(u: Tensor) -> tuple[Tensor, Tensor]:
        x = act.map(u).double()
        if not bool(torch.isfinite(x).all()):
            bad = u[~torch.isfinite(x)].flatten()[0]
            raise ValueError(f"activation {act.name!r}: map({float(bad):.6g}) is not finite; "
                             "its prox (lifted Bregman training) needs a map that is finite "
                             "for every input")
        return (1.0 - ts) * x + ts * u - wd, x

    h0, x = h(wd)
    far, near = h0.abs() / ts, h0.abs() / ((1.0 - ts) * slope + ts)
    limit = (td <= 0) | ~torch.isfinite(wd - far) | ~torch.isfinite(wd + far)
    far = torch.where(limit, torch.zeros_like(far), far)
    near = torch.where(limit, torch.zeros_like(near), near)
    lo = torch.where(h0 > 0, wd - far, wd + near)
    hi = torch.where(h0 > 0, wd - near, wd + far)
    h_lo, h_hi = h(lo)[0], h(hi)[0]  # <= 0 and >= 0
    slack = 64.0 * eps * (wd.abs() + ts * torch.maximum(lo.abs(), hi.abs()) + 1.0)
    if bool(((h_lo > slack) | (h_hi < -slack))[~limit].any()):
        raise ValueError(f"activation {act.name!r}: its slope {slope} is below sup sigma' "
                         "(the prox's bracket does not hold); declare the Lipschitz constant "
                         "of its map as slope")
    side = torch.zeros_like(wd)  # +1: hi was replaced last, -1: lo was
    for _ in range(200):
        secant = (lo * h_hi - hi * h_lo) / (h_hi - h_lo)
        ok = torch.isfinite(secant) & (secant >= lo) & (secant <= hi)
        u = torch.where(ok, secant, 0.5 * (lo + hi))
        hu, x = h(u)
        tol = 1e-12 * x.abs().clamp_min(1.0)
        rounding = 8.0 * eps * (wd.abs() + ts * u.abs())  # the rounding of h itself
        done = (hu.abs() <= gain * tol + rounding) | (slope * (hi - lo) <= tol) \
            | (hi - lo <= 4.0 * eps * torch.maximum(lo.abs(), hi.abs())) | limit
        if bool(done.all()):
            break
        right = hu > 0  # the root is left of u: u replaces hi
        # Illinois: an end kept twice in a row has its value halved (no one-sided stalls)
        h_lo = torch.where(right & (side > 0), 0.5 * h_lo, h_lo)
        h_hi = torch.where(~right & (side < 0), 0.5 * h_hi, h_hi)
        hi, h_hi = torch.where(right, u, hi), torch.where(right, hu, h_hi)
        lo, h_lo = torch.where(right, lo, u), torch.where(right, h_lo, hu)
        side = torch.where(right, 1.0, -1.0)
    if bool(limit.any()):
        lower, upper = act.domain
        proj = wd if lower is None and upper is None else wd.clamp(lower, upper)
        x = torch.where(limit, proj, x)
    return x.to(w.dtype)
