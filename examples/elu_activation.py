"""A user-defined activation, ELU, registered for every liftnet method (``docs/extending.md``).

    liftnet train --plugin examples/elu_activation.py --activation elu --method fenchel ...

sigma(u) = u for u > 0 and e^u - 1 below, strictly increasing onto (-1, inf); its potential
Phi(v) = int_0^v sigma^{-1}, Phi' = sigma^{-1}, is Legendre (Phi'' = 1 / (1 + v) is unbounded
at v = -1), so Fenchel's X-step treats it by Bregman proximal gradient ("mirror").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from liftnet import Activation, register_activation


@dataclass(frozen=True)
class ELU(Activation):
    """sigma(u) = max(u, 0) + min(e^u - 1, 0) (torch's ELU with alpha 1)."""

    name: ClassVar[str] = "elu"
    domain: ClassVar[tuple[float | None, float | None]] = (-1.0, None)  # closure of the range
    slope: ClassVar[float | None] = 1.0  # sup sigma'
    fenchel_x_step: ClassVar[str | None] = "mirror"

    def map(self, u: Tensor) -> Tensor:
        return nn.functional.elu(u)

    def _phi(self, v: Tensor) -> Tensor:  # Phi(v) = int_0^v sigma^{-1}(t) dt on [-1, inf)
        return torch.where(v > 0, 0.5 * v * v, torch.xlogy(1 + v, 1 + v) - v)

    def conjugate(self, u: Tensor) -> Tensor:  # Phi*(u) = int_0^u sigma(t) dt
        return torch.where(u > 0, 0.5 * u * u, torch.expm1(u.clamp_max(0)) - u)

    def inverse(self, v: Tensor) -> Tensor:  # sigma^{-1} = Phi'
        return torch.where(v > 0, v, torch.log1p(v.clamp_max(0)))

    def torch_module(self) -> nn.Module:
        return nn.ELU()


register_activation(ELU(), replace=True)
