"""Activations as argmin maps (paper 004, section 4).

Every activation sigma is the minimiser of a divergence D(u, v) over the output variable v for a
fixed input u (the paper's D(x, z) with x = u, z = v): ``sigma(u) in argmin_v D(u, v)``. Two forms:

* BC (bi-convex): ``D(u, v) = Phi(v) - u^T v`` with the potential
  ``Phi(v) = int_0^v sigma^{-1}(t) dt`` on range(sigma), +inf outside (paper (6)-(7)).
* JC (jointly convex), for the box activations: ``D(u, v) = ||v - u||^2`` plus the indicator of
  a box ``lower <= v <= upper`` (``Activation.box``): relu, hardtanh, piecewise_sigmoid, identity.

Tensors are batch first; divergences are summed over all but the first dimension (paper's
"extension to matrix inputs"), giving shape (N,). Every potential is normalised by Phi(0) = 0.
"""

from __future__ import annotations

import difflib
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from .solvers.simplex import project_simplex

Bounds = tuple[float | None, float | None]


def _batch_sum(d: Tensor) -> Tensor:
    """Sum over all but the first (batch) dimension: (N, ...) -> (N,)."""
    return d.reshape(d.shape[0], -1).sum(1) if d.dim() > 1 else d


def _in_interval(v: Tensor, bounds: Bounds) -> Tensor:
    lower, upper = bounds
    mask = torch.ones_like(v, dtype=torch.bool)
    if lower is not None:
        mask &= v >= lower
    if upper is not None:
        mask &= v <= upper
    return mask


class Activation(ABC):
    """An activation sigma with its divergence, potential and domain.

    Subclasses set the class attributes and implement ``map``, ``torch_module`` and, for the
    elementwise ones, ``_phi`` (the potential on its domain, evaluated on clamped inputs).

    Attributes:
        name: registry key.
        elementwise: False for simplex and max-pooling.
        domain: closed interval dom Phi = closure of range(sigma) (elementwise ones only).
        box: the box of the JC divergence ``||v - u||^2 + indicator(lower <= v <= upper)``, or
            None where ``divergence`` is the BC form ``Phi(v) - u v`` (or a non-elementwise one);
            ``map`` is then the projection onto the box (the lifted network trains every such
            activation; ``register_activation`` checks it).
        slope: sup sigma', the Lipschitz constant of sigma (None where not set): Phi is then
            1 / slope-strongly convex, and the gradient sigma(u) - v of the Fenchel-Young gap
            in u is slope-Lipschitz (the curvature bounds of the Fenchel blocks).
    """

    name: ClassVar[str]
    elementwise: ClassVar[bool] = True
    domain: ClassVar[Bounds] = (None, None)
    box: ClassVar[Bounds | None] = None
    slope: ClassVar[float | None] = None
    #: how the Fenchel X-step (paper 003 (14)) treats Phi: "euclidean" (a Lipschitz gradient
    #: on dom Phi, sup Phi'' = ``curvature()``: projected gradient), "mirror" (Phi Legendre,
    #: Phi' = sigma^{-1} infinite at the finite ends of the range: Bregman proximal gradient
    #: with Phi as the distance), None (no Fenchel X-step)
    fenchel_x_step: ClassVar[str | None] = None

    @abstractmethod
    def map(self, u: Tensor) -> Tensor:
        """sigma(u), the feed-forward activation."""

    @abstractmethod
    def torch_module(self) -> nn.Module:
        """The matching ``torch.nn`` layer (its output equals ``map``)."""

    def _phi(self, v: Tensor) -> Tensor:
        raise TypeError(f"{type(self).__name__} has no elementwise potential")

    def in_domain(self, v: Tensor) -> Tensor:
        """Boolean mask of v in dom Phi (elementwise: ``domain[0] <= v <= domain[1]``)."""
        return _in_interval(v, self.domain)

    def conjugate(self, u: Tensor) -> Tensor:
        """Phi*(u) = int_{sigma^{-1}(z)}^u sigma(t) dt element-wise (paper 003 Theorem 1:
        the Fenchel-Young gap is Phi(v) + Phi*(u) - u v)."""
        raise NotImplementedError(f"activation {self.name!r} has no conjugate Phi* here")

    def inverse(self, v: Tensor) -> Tensor:
        """sigma^{-1}(v) = Phi'(v) on dom Phi (a subgradient where Phi is not differentiable)."""
        raise NotImplementedError(f"activation {self.name!r} has no inverse sigma^{{-1}} here")

    def curvature(self) -> float | None:
        """sup Phi'' on dom Phi, i.e. 1 / inf sigma' over the interior of sigma's range (ReLU:
        1), None where unbounded or not set."""
        return None

    def min_curvature(self) -> float:
        """inf Phi'' on dom Phi = 1 / sup sigma' = 1 / ``slope`` (Phi' = sigma^{-1}; ReLU: 1,
        sigmoid: 4): the modulus of strong convexity of Phi, which Fenchel's X-steps may use
        for their momentum (``x_momentum="strong"``); 0 (no claim) where ``slope`` is unset."""
        return 1.0 / self.slope if self.slope else 0.0

    def potential(self, v: Tensor) -> Tensor:
        """Phi(v) = int_0^v sigma^{-1}(t) dt elementwise, +inf outside dom Phi."""
        lower, upper = self.domain
        inside = self.in_domain(v)
        phi = self._phi(v.clamp(lower, upper) if (lower, upper) != (None, None) else v)
        return torch.where(inside, phi, torch.full_like(phi, math.inf))

    def divergence(self, u: Tensor, v: Tensor) -> Tensor:
        """D(u, v) summed per sample -> (N,); +inf where v is outside the domain.

        ``||v - u||^2`` on the box when ``box`` is set (JC), else ``Phi(v) - u v`` (BC).
        """
        if self.box is not None:
            d = torch.where(self.in_domain(v), (v - u) ** 2, torch.full_like(v, math.inf))
        else:
            d = self.potential(v) - u * v
        return _batch_sum(d)


@dataclass(frozen=True)
class ReLU(Activation):
    """sigma(u) = max(u, 0).

    JC: D(u, v) = ||v - u||^2 + indicator(v >= 0) (used by ``divergence``); BC:
    Phi(v) = v^2 / 2 on v >= 0, so that max(u, 0) = argmin_{v >= 0} v^2/2 - u v.
    """

    name: ClassVar[str] = "relu"
    slope: ClassVar[float | None] = 1.0
    fenchel_x_step: ClassVar[str | None] = "euclidean"
    domain: ClassVar[Bounds] = (0.0, None)
    box: ClassVar[Bounds | None] = (0.0, None)

    def map(self, u: Tensor) -> Tensor:
        return torch.relu(u)

    def _phi(self, v: Tensor) -> Tensor:
        return 0.5 * v**2

    def conjugate(self, u: Tensor) -> Tensor:
        return 0.5 * torch.relu(u) ** 2

    def inverse(self, v: Tensor) -> Tensor:
        return v

    def curvature(self) -> float:
        return 1.0

    def torch_module(self) -> nn.Module:
        return nn.ReLU()


@dataclass(frozen=True)
class LeakyReLU(Activation):
    """sigma(u) = max(alpha u, u), 0 < alpha < 1 (the torch convention).

    BC (paper (8)): sigma^{-1}(v) = v for v >= 0 and v / alpha for v < 0, so
    Phi(v) = 1/2 max((1/alpha) max(0, -v)^2, max(0, v)^2), D(u, v) = Phi(v) - u v, dom = R.
    The paper's JC form ``argmin ||u - v||^2 : v >= u / alpha`` is of max(u / alpha, u) =
    max(alpha u, u) / alpha, a rescaled function; for this map the JC form is
    ``argmin ||v - u||^2 : v >= alpha u``. ``divergence`` uses the BC form.
    """

    alpha: float = 0.01
    name: ClassVar[str] = "leaky_relu"
    slope: ClassVar[float | None] = 1.0
    fenchel_x_step: ClassVar[str | None] = "euclidean"

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")

    def map(self, u: Tensor) -> Tensor:
        return torch.maximum(self.alpha * u, u)

    def _phi(self, v: Tensor) -> Tensor:
        return 0.5 * torch.where(v >= 0, v**2, v**2 / self.alpha)

    def conjugate(self, u: Tensor) -> Tensor:
        return 0.5 * torch.where(u >= 0, u * u, self.alpha * u * u)

    def inverse(self, v: Tensor) -> Tensor:
        return torch.where(v >= 0, v, v / self.alpha)

    def curvature(self) -> float:
        return 1.0 / self.alpha

    def torch_module(self) -> nn.Module:
        return nn.LeakyReLU(self.alpha)


@dataclass(frozen=True)
class Sigmoid(Activation):
    """sigma(u) = 1 / (1 + e^{-u}).

    Phi(v) = v log v + (1 - v) log(1 - v) on [0, 1] (0 log 0 = 0), D(u, v) = Phi(v) - u v.
    """

    name: ClassVar[str] = "sigmoid"
    slope: ClassVar[float | None] = 0.25
    fenchel_x_step: ClassVar[str | None] = "mirror"
    domain: ClassVar[Bounds] = (0.0, 1.0)

    def map(self, u: Tensor) -> Tensor:
        return torch.sigmoid(u)

    def _phi(self, v: Tensor) -> Tensor:
        return torch.xlogy(v, v) + torch.xlogy(1 - v, 1 - v)

    def conjugate(self, u: Tensor) -> Tensor:  # log(1 + e^u), softplus without a threshold
        return torch.logaddexp(u, torch.zeros_like(u))

    def inverse(self, v: Tensor) -> Tensor:
        return torch.logit(v)

    def torch_module(self) -> nn.Module:
        return nn.Sigmoid()


@dataclass(frozen=True)
class Tanh(Activation):
    """sigma(u) = tanh(u), sigma^{-1} = atanh.

    Phi(v) = ((1 - v) log(1 - v) + (1 + v) log(1 + v)) / 2 on [-1, 1], D(u, v) = Phi(v) - u v.
    """

    name: ClassVar[str] = "tanh"
    slope: ClassVar[float | None] = 1.0
    fenchel_x_step: ClassVar[str | None] = "mirror"
    domain: ClassVar[Bounds] = (-1.0, 1.0)

    def map(self, u: Tensor) -> Tensor:
        return torch.tanh(u)

    def _phi(self, v: Tensor) -> Tensor:
        return 0.5 * (torch.xlogy(1 - v, 1 - v) + torch.xlogy(1 + v, 1 + v))

    def conjugate(self, u: Tensor) -> Tensor:  # log cosh u, computed without overflow
        a = u.abs()
        return a + torch.log1p(torch.exp(-2 * a)) - math.log(2.0)

    def inverse(self, v: Tensor) -> Tensor:
        return torch.atanh(v)

    def torch_module(self) -> nn.Module:
        return nn.Tanh()


@dataclass(frozen=True)
class HardTanh(Activation):
    """sigma(u) = min(1, max(-1, u)) (the paper's piecewise sigmoid on [-1, 1]).

    JC: D(u, v) = ||v - u||^2 + indicator(|v| <= 1); the paper's v^2 - 2 u v differs from it by
    u^2, a term free of v. BC: Phi(v) = v^2 / 2 on [-1, 1].
    """

    name: ClassVar[str] = "hardtanh"
    slope: ClassVar[float | None] = 1.0
    fenchel_x_step: ClassVar[str | None] = "euclidean"
    domain: ClassVar[Bounds] = (-1.0, 1.0)
    box: ClassVar[Bounds | None] = (-1.0, 1.0)

    def map(self, u: Tensor) -> Tensor:
        return u.clamp(-1.0, 1.0)

    def _phi(self, v: Tensor) -> Tensor:
        return 0.5 * v**2

    def conjugate(self, u: Tensor) -> Tensor:  # Phi = v^2/2 on [-1.0, 1]: a Huber function
        c = u.clamp(-1.0, 1.0)
        return c * u - 0.5 * c * c

    def inverse(self, v: Tensor) -> Tensor:
        return v

    def curvature(self) -> float:
        return 1.0

    def torch_module(self) -> nn.Module:
        return nn.Hardtanh(-1.0, 1.0)


@dataclass(frozen=True)
class SoftThreshold(Activation):
    """sigma(u) = sign(u) max(|u| - alpha, 0), the proximal map of alpha |.| (alpha > 0).

    sigma^{-1}(v) = v + alpha sign(v) (the whole interval [-alpha, alpha] at v = 0), so
    Phi(v) = v^2 / 2 + alpha |v| on R and D(u, v) = Phi(v) - u v (BC).
    """

    alpha: float = 0.1
    name: ClassVar[str] = "soft_threshold"
    slope: ClassVar[float | None] = 1.0

    def __post_init__(self) -> None:
        if not (0.0 < self.alpha < math.inf):
            raise ValueError(f"alpha must be a finite number > 0, got {self.alpha}")

    def map(self, u: Tensor) -> Tensor:
        return torch.sign(u) * (u.abs() - self.alpha).clamp_min(0.0)

    def _phi(self, v: Tensor) -> Tensor:
        return 0.5 * v**2 + self.alpha * v.abs()

    def conjugate(self, u: Tensor) -> Tensor:  # Phi = v^2/2 + alpha |v|
        return 0.5 * (u.abs() - self.alpha).clamp_min(0.0) ** 2

    def inverse(self, v: Tensor) -> Tensor:  # the least-norm element of the subdifferential
        return v + self.alpha * torch.sign(v)

    def torch_module(self) -> nn.Module:
        return nn.Softshrink(self.alpha)


@dataclass(frozen=True)
class PiecewiseSigmoid(Activation):
    """sigma(u) = min(1, max(0, u)).

    JC: D(u, v) = ||v - u||^2 + indicator(0 <= v <= 1). BC: Phi(v) = v^2 / 2 on [0, 1].
    """

    name: ClassVar[str] = "piecewise_sigmoid"
    slope: ClassVar[float | None] = 1.0
    fenchel_x_step: ClassVar[str | None] = "euclidean"
    domain: ClassVar[Bounds] = (0.0, 1.0)
    box: ClassVar[Bounds | None] = (0.0, 1.0)

    def map(self, u: Tensor) -> Tensor:
        return u.clamp(0.0, 1.0)

    def _phi(self, v: Tensor) -> Tensor:
        return 0.5 * v**2

    def conjugate(self, u: Tensor) -> Tensor:  # Phi = v^2/2 on [0.0, 1]: a Huber function
        c = u.clamp(0.0, 1.0)
        return c * u - 0.5 * c * c

    def inverse(self, v: Tensor) -> Tensor:
        return v

    def curvature(self) -> float:
        return 1.0

    def torch_module(self) -> nn.Module:
        return nn.Hardtanh(0.0, 1.0)


class Sign(nn.Module):
    """torch.sign as a module."""

    def forward(self, u: Tensor) -> Tensor:
        return torch.sign(u)


@dataclass(frozen=True)
class SignActivation(Activation):
    """sigma(u) = sign(u).

    Phi = indicator of [-1, 1]: D(u, v) = -u v on |v| <= 1. The argmin is +-1 for u != 0 and
    all of [-1, 1] at u = 0, where ``map`` returns torch.sign(0) = 0.
    """

    name: ClassVar[str] = "sign"
    domain: ClassVar[Bounds] = (-1.0, 1.0)

    def map(self, u: Tensor) -> Tensor:
        return torch.sign(u)

    def _phi(self, v: Tensor) -> Tensor:
        return 0.0 * v  # keeps the autograd graph (gradient 0)

    def torch_module(self) -> nn.Module:
        return Sign()


_LI2_TERMS = torch.arange(1, 49)  # 0.5^49 / 49^2 < 1e-18: enough for x <= 1/2 in float64


def _li2_small(x: Tensor) -> Tensor:
    """Dilogarithm Li2(x) = sum_{k >= 1} x^k / k^2 for 0 <= x <= 1/2 (48 terms)."""
    k = _LI2_TERMS.to(dtype=x.dtype, device=x.device)
    return (x.unsqueeze(-1) ** k / k**2).sum(-1)


def _softplus_potential(v: Tensor) -> Tensor:
    """Phi(v) = int_0^v log(e^t - 1) dt = v^2/2 + Li2(e^{-v}) - pi^2/6 for v >= 0.

    From log(e^t - 1) = t + log(1 - e^{-t}) and d/dt Li2(e^{-t}) = log(1 - e^{-t}). For
    e^{-v} > 1/2 Euler's reflection Li2(x) = pi^2/6 - log(x) log(1 - x) - Li2(1 - x) gives
    Phi(v) = v^2/2 + v log(1 - e^{-v}) - Li2(1 - e^{-v}), which keeps both series in [0, 1/2].
    """
    ln2 = math.log(2.0)
    large = _li2_small(torch.exp(-v.clamp_min(ln2))) - math.pi**2 / 6
    vs = v.clamp_max(ln2)
    y = -torch.expm1(-vs)
    small = torch.xlogy(vs, y) - _li2_small(y)
    return 0.5 * v**2 + torch.where(v >= ln2, large, small)


@dataclass(frozen=True)
class Softplus(Activation):
    """sigma(u) = log(1 + e^u) (torch's, linear above u = 20), sigma^{-1}(v) = log(e^v - 1).

    Phi(v) = int_0^v log(e^t - 1) dt = v^2/2 + Li2(e^{-v}) - pi^2/6 on v >= 0 (Li2 the
    dilogarithm, computed by its power series with Euler's reflection), D(u, v) = Phi(v) - u v.
    """

    name: ClassVar[str] = "softplus"
    domain: ClassVar[Bounds] = (0.0, None)

    def map(self, u: Tensor) -> Tensor:
        return nn.functional.softplus(u)

    def _phi(self, v: Tensor) -> Tensor:
        return _softplus_potential(v)

    def torch_module(self) -> nn.Module:
        return nn.Softplus()


class Sin(nn.Module):
    """torch.sin as a module."""

    def forward(self, u: Tensor) -> Tensor:
        return torch.sin(u)


@dataclass(frozen=True)
class SinActivation(Activation):
    """sigma(u) = sin(u), with Phi(v) = v arcsin v + sqrt(1 - v^2) - 1 on [-1, 1].

    D(u, v) = Phi(v) - u v. Its argmin is sin(clamp(u, -pi/2, pi/2)): it equals sin(u) only for
    |u| <= pi/2 and sign(u) beyond, so sin is NOT an argmin map on all of R (the paper's claim
    holds on [-pi/2, pi/2] only). ``map`` is the true sine, as in the feed-forward network.
    """

    name: ClassVar[str] = "sin"
    domain: ClassVar[Bounds] = (-1.0, 1.0)

    def map(self, u: Tensor) -> Tensor:
        return torch.sin(u)

    def _phi(self, v: Tensor) -> Tensor:
        return v * torch.asin(v) + torch.sqrt(1 - v**2) - 1

    def torch_module(self) -> nn.Module:
        return Sin()


@dataclass(frozen=True)
class Identity(Activation):
    """sigma(u) = u. JC: D(u, v) = ||v - u||^2 (box unbounded); BC: Phi(v) = v^2 / 2."""

    name: ClassVar[str] = "identity"
    slope: ClassVar[float | None] = 1.0
    fenchel_x_step: ClassVar[str | None] = "euclidean"
    box: ClassVar[Bounds | None] = (None, None)

    def map(self, u: Tensor) -> Tensor:
        return u

    def _phi(self, v: Tensor) -> Tensor:
        return 0.5 * v**2

    def conjugate(self, u: Tensor) -> Tensor:
        return 0.5 * u * u

    def inverse(self, v: Tensor) -> Tensor:
        return v

    def curvature(self) -> float:
        return 1.0

    def torch_module(self) -> nn.Module:
        return nn.Identity()


class SimplexProjection(nn.Module):
    """Euclidean projection of each row onto the probability simplex."""

    def forward(self, u: Tensor) -> Tensor:
        return project_simplex(u)


@dataclass(frozen=True)
class Simplex(Activation):
    """sigma(u) = argmin_v ||v - u||^2 : v >= 0, 1^T v = 1, rowwise over the last dimension.

    D(u, v) = ||v - u||^2 + indicator(each row of v on the simplex); rows (N, p) -> (N, p).
    ``in_domain`` is rowwise (shape v.shape[:-1]), with a tolerance sqrt(eps) on the row sum.
    """

    name: ClassVar[str] = "simplex"
    elementwise: ClassVar[bool] = False

    def map(self, u: Tensor) -> Tensor:
        return project_simplex(u)

    def in_domain(self, v: Tensor) -> Tensor:
        tol = math.sqrt(torch.finfo(v.dtype).eps)
        return (v >= 0).all(-1) & ((v.sum(-1) - 1).abs() <= tol)

    def divergence(self, u: Tensor, v: Tensor) -> Tensor:
        inside = self.in_domain(v).reshape(v.shape[0], -1).all(1)
        d = _batch_sum((v - u) ** 2)
        return torch.where(inside, d, torch.full_like(d, math.inf))

    def torch_module(self) -> nn.Module:
        return SimplexProjection()


class BlockMaxPool1d(nn.Module):
    """Max over consecutive blocks of size k of the last dim: (..., p k) -> (..., p)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, u: Tensor) -> Tensor:
        return u.unflatten(-1, (-1, self.k)).amax(-1)


@dataclass(frozen=True)
class MaxPool(Activation):
    """sigma(u)_j = max_{i in block j} u_i over consecutive blocks of size k: (N, p k) -> (N, p).

    JC (paper (9)): D(u, v) = 1^T v + c 1^T (u - E v)_+, with E the (p k, p) block-diagonal
    0/1 matrix repeating each v_j k times and c = ``hinge_weight`` (the paper: c = 1).

    Uniqueness: per block, f(z) = z + c sum_i (u_i - z)_+ has slope 1 - c #{i : u_i > z}. For
    c = 1 the slope is 0 between the two largest entries, so the argmin is the whole interval
    [second largest, largest] (unbounded below when k = 1), with minimum value the max; the
    max is its largest point, not the unique minimiser. Any c > 1 makes the max the unique
    argmin with the same minimum value.
    """

    k: int = 2
    hinge_weight: float = 1.0
    name: ClassVar[str] = "maxpool"
    elementwise: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not (isinstance(self.k, int) and self.k >= 1):
            raise ValueError(f"k must be an integer >= 1, got {self.k}")
        if not self.hinge_weight >= 1.0:
            raise ValueError(f"hinge_weight must be >= 1, got {self.hinge_weight}")

    def map(self, u: Tensor) -> Tensor:
        return u.unflatten(-1, (-1, self.k)).amax(-1)

    def in_domain(self, v: Tensor) -> Tensor:
        return torch.ones_like(v, dtype=torch.bool)

    def divergence(self, u: Tensor, v: Tensor) -> Tensor:
        hinge = (u.unflatten(-1, (-1, self.k)) - v.unsqueeze(-1)).clamp_min(0).sum(-1)
        return _batch_sum(v + self.hinge_weight * hinge)

    def torch_module(self) -> nn.Module:
        return BlockMaxPool1d(self.k)


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        ReLU(),
        LeakyReLU(),
        Sigmoid(),
        Tanh(),
        HardTanh(),
        SoftThreshold(),
        PiecewiseSigmoid(),
        SignActivation(),
        Softplus(),
        SinActivation(),
        Simplex(),
        MaxPool(),
        Identity(),
    )
}


def get_activation(name: str | Activation) -> Activation:
    """The registered activation called ``name`` (an Activation is returned as is)."""
    if isinstance(name, Activation):
        return name
    try:
        return ACTIVATIONS[name]
    except KeyError:
        pass
    close = difflib.get_close_matches(str(name), list(ACTIVATIONS), n=1)
    blocks = sorted(k for k, a in ACTIVATIONS.items() if not a.elementwise)
    raise ValueError(
        f"unknown activation {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
        + f"; valid: {', '.join(sorted(set(ACTIVATIONS) - set(blocks)))}"
        + (f"; not elementwise (output and pooling layers): {', '.join(blocks)}"
           if blocks else ""))


def register_activation(activation: Activation, *, replace: bool = False) -> Activation:
    """Make ``activation`` available by its ``name`` everywhere a name is taken
    (``--activation``, the ``activation=`` of ``mlp`` / ``network`` and of the estimators, saved
    models).

    What each method needs of it (the built-in classes above are the examples):

    * every method: ``map`` and ``torch_module`` (export to ``torch.nn``);
    * ``backprop``: nothing more (the gradient of ``map`` by autograd);
    * ``fenchel`` (paper 003): ``potential`` (``_phi`` and ``domain``), ``conjugate``,
      ``inverse``, ``slope`` and ``fenchel_x_step`` ("euclidean" with ``curvature``, or
      "mirror" for a Legendre potential).
    * ``lifted`` (paper 004): a ``box`` (lower, upper) with ``map`` the projection onto it
      (checked here on a grid);
    * ``bregman`` (paper 001): ``potential`` (``_phi`` and ``domain``), ``conjugate`` and a
      ``slope`` <= 1 (:func:`liftnet.proximal.is_proximal`).
    The other built-in methods train their own lists of activations (``hidden_activations``).

    Raises ``ValueError`` for a name already registered (unless ``replace``), an object that
    is not an :class:`Activation` with a name, a ``fenchel_x_step`` without what it needs, or a
    ``box`` that ``map`` does not project onto.
    """
    if not isinstance(activation, Activation):
        raise ValueError(f"register_activation needs an Activation instance, got "
                         f"{type(activation).__name__}")
    name = getattr(activation, "name", None)
    if not isinstance(name, str) or not name or "-" in name or "," in name:
        raise ValueError(f"an activation needs a non-empty name without '-' or ',', got {name!r}")
    if name in ACTIVATIONS and not replace:
        raise ValueError(f"activation {name!r} is already registered; pass replace=True to "
                         "replace it")
    step = activation.fenchel_x_step
    if step not in (None, "euclidean", "mirror"):
        raise ValueError(f"fenchel_x_step must be None, 'euclidean' or 'mirror', got {step!r}")
    if step is not None:
        cls = type(activation)
        missing = [m for m in ("conjugate", "inverse")
                   if getattr(cls, m) is getattr(Activation, m)]
        if step == "euclidean" and cls.curvature is Activation.curvature:
            missing.append("curvature")
        if missing or not (isinstance(activation.slope, (int, float))
                           and 0 < activation.slope < math.inf):
            raise ValueError(
                f"activation {name!r} declares fenchel_x_step={step!r} but "
                + (f"does not define {', '.join(missing)}" if missing
                   else f"its slope (sup sigma') is {activation.slope!r}, not a number > 0"))
        if step == "euclidean":  # strong convexity <= Lipschitz constant of Phi'
            low, high = activation.min_curvature(), activation.curvature()
            if not (isinstance(low, (int, float)) and isinstance(high, (int, float))
                    and 0 <= low <= high < math.inf):
                raise ValueError(f"activation {name!r}: need 0 <= min_curvature() <= "
                                 f"curvature() < inf (inf and sup of Phi''), got {low!r} and "
                                 f"{high!r}")
    if activation.box is not None:
        _check_box(activation)
    ACTIVATIONS[name] = activation
    return activation


def _check_box(activation: Activation) -> None:
    """An activation declaring a ``box`` must be the projection onto it (the JC divergence
    ||v - u||^2 + indicator(box) has sigma(u) as its argmin only then): checked on a grid."""
    box = activation.box
    if not (isinstance(box, tuple) and len(box) == 2
            and all(b is None or isinstance(b, (int, float)) for b in box)
            and (None in box or box[0] < box[1])):
        raise ValueError(f"activation {activation.name!r}: box must be (lower, upper) with "
                         f"lower < upper (None for no bound), got {box!r}")
    if not all(b is None or math.isfinite(b) for b in box):
        raise ValueError(f"activation {activation.name!r}: box bounds must be finite numbers; "
                         f"use None for no bound, got {box!r}")
    u = torch.cat([torch.linspace(-20.0, 20.0, 401, dtype=torch.float64),
                   torch.tensor([-1e6, -1e3, 1e3, 1e6], dtype=torch.float64)])
    for b in box:  # each bound, and beyond it by a margin that scales with it
        if b is not None:
            d = max(0.5, 1e-3 * abs(b))
            u = torch.cat([u, torch.tensor([b - d, b, b + d], dtype=torch.float64)])
    try:
        got = activation.map(u)
    except Exception as exc:  # a plugin's map failing on a float64 grid: say which
        raise ValueError(f"activation {activation.name!r}: map failed on a test grid "
                         f"({exc})") from exc
    want = u if box == (None, None) else u.clamp(box[0], box[1])
    if not (isinstance(got, Tensor) and got.shape == u.shape
            and bool(((got.double() - want).abs() <= 1e-6 * want.abs().clamp_min(1.0)).all())):
        raise ValueError(f"activation {activation.name!r} declares box={box!r} but its map is "
                         "not the projection onto that box (clamp(u, lower, upper))")
