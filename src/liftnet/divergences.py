"""Divergences turning an activation into a penalty D(v, u) >= 0 that is zero iff v = sigma(u).

The Fenchel-Young gap of paper 003, Theorem 1 (4): for a continuous strictly increasing
activation sigma with 0 in its range or domain,

    F(v)  = int_z^v sigma^{-1}(t) dt        (the potential ``Activation.potential``, F(0) = 0)
    F*(u) = int_{sigma^{-1}(z)}^u sigma(t) dt (its Fenchel conjugate)
    B(v, u) = F(v) + F*(u) - u v >= 0,  = 0 exactly when v = sigma(u),

convex in v for fixed u and convex in u for fixed v (biconvex).  For ReLU this is (5):
``B(v, u) = v^2/2 + u_+^2/2 - u v`` on v >= 0 (+inf for v < 0); for the identity it is
``(v - u)^2 / 2``.  Its partial gradients need no derivative of sigma:

    dB/du = sigma(u) - v,       dB/dv = sigma^{-1}(v) - u.

Tensors are batch first; :func:`fenchel_gap` returns the element-wise gap, :func:`fenchel_b`
sums it per sample (the paper's matrix extension ``B(V, U) = sum_ij B(V_ij, U_ij)``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .activations import get_activation

#: activations with a Fenchel-Young gap (Theorem 1 and (5))
FENCHEL_ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "identity")
#: activations whose conjugate F* is written here (the Fenchel ones and the piecewise-linear
#: proximal activations of lifted Bregman training, :mod:`liftnet.proximal`)
CONJUGATES = (*FENCHEL_ACTIVATIONS, "hardtanh", "piecewise_sigmoid", "soft_threshold")


def conjugate(name: str, u: Tensor) -> Tensor:
    """F*(u) = int_{sigma^{-1}(z)}^u sigma(t) dt, element-wise, of the activation ``name``."""
    if name == "relu":
        return 0.5 * torch.relu(u) ** 2
    if name == "leaky_relu":
        a = get_activation(name).alpha
        return 0.5 * torch.where(u >= 0, u * u, a * u * u)
    if name == "sigmoid":  # F(v) = v log v + (1 - v) log(1 - v): F* = log(1 + e^u)
        return torch.logaddexp(u, torch.zeros_like(u))  # softplus without a threshold
    if name == "tanh":  # F* = log cosh u, computed without overflow
        a = u.abs()
        return a + torch.log1p(torch.exp(-2 * a)) - math.log(2.0)
    if name == "identity":
        return 0.5 * u * u
    if name in ("hardtanh", "piecewise_sigmoid"):  # F = v^2/2 on [lo, 1]: a Huber function
        lo = -1.0 if name == "hardtanh" else 0.0
        c = u.clamp(lo, 1.0)
        return c * u - 0.5 * c * c
    if name == "soft_threshold":  # F = v^2/2 + alpha |v|: F* = (|u| - alpha)_+^2 / 2
        a = get_activation(name).alpha
        return 0.5 * (u.abs() - a).clamp_min(0.0) ** 2
    raise ValueError(
        f"activation {name!r} has no Fenchel-Young gap here; choose one of "
        f"{', '.join(CONJUGATES)}"
    )


def inverse(name: str, v: Tensor) -> Tensor:
    """sigma^{-1}(v) = F'(v) on the domain of F (ReLU: v itself on v >= 0)."""
    if name in ("relu", "identity", "hardtanh", "piecewise_sigmoid"):
        return v
    if name == "soft_threshold":  # the least-norm element of the subdifferential at 0
        return v + get_activation(name).alpha * torch.sign(v)
    if name == "leaky_relu":
        return torch.where(v >= 0, v, v / get_activation(name).alpha)
    if name == "sigmoid":
        return torch.logit(v)
    if name == "tanh":
        return torch.atanh(v)
    raise ValueError(f"activation {name!r} has no Fenchel-Young gap here")


def fenchel_gap(name: str, V: Tensor, U: Tensor) -> Tensor:
    """Element-wise B(v, u) = F(v) + F*(u) - u v (+inf where v is outside dom F), clamped at 0
    against rounding."""
    act = get_activation(name)
    gap = act.potential(V) + conjugate(name, U) - U * V
    return torch.where(torch.isinf(gap), gap, gap.clamp_min(0.0))


def fenchel_b(name: str, V: Tensor, U: Tensor) -> Tensor:
    """B(V, U) summed over all but the batch dimension: (N, ...) -> (N,)."""
    gap = fenchel_gap(name, V, U)
    return gap.reshape(gap.shape[0], -1).sum(1)
