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

import torch
from torch import Tensor

from .activations import ACTIVATIONS, Activation, get_activation

#: activations with a Fenchel-Young gap (Theorem 1 and (5))
FENCHEL_ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "identity")
#: built-in activations that define F* (the Fenchel ones and the piecewise-linear proximal
#: activations of lifted Bregman training, :mod:`liftnet.proximal`); :func:`with_conjugate`
#: lists the registered ones
CONJUGATES = (*FENCHEL_ACTIVATIONS, "hardtanh", "piecewise_sigmoid", "soft_threshold")


def conjugate(name: str | Activation, u: Tensor) -> Tensor:
    """F*(u) = int_{sigma^{-1}(z)}^u sigma(t) dt, element-wise, of the activation ``name``
    (:meth:`liftnet.activations.Activation.conjugate`; a registered activation of one's own
    takes part by defining it)."""
    act = get_activation(name)
    try:
        return act.conjugate(u)
    except NotImplementedError:
        raise ValueError(
            f"activation {act.name!r} has no Fenchel-Young gap here; choose one of "
            f"{', '.join(with_conjugate())}"
        ) from None


def inverse(name: str | Activation, v: Tensor) -> Tensor:
    """sigma^{-1}(v) = F'(v) on the domain of F (ReLU: v itself on v >= 0)."""
    act = get_activation(name)
    try:
        return act.inverse(v)
    except NotImplementedError:
        raise ValueError(f"activation {act.name!r} has no Fenchel-Young gap here") from None


def with_conjugate() -> tuple[str, ...]:
    """The registered activations that define F* (built in: ``CONJUGATES``)."""
    return tuple(name for name, act in ACTIVATIONS.items()
                 if type(act).conjugate is not Activation.conjugate)


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
