"""Network descriptions: layers, architectures and the plain feed-forward rule.

A :class:`Network` is a description only (sizes, activations, loss); the parameters live apart,
as a list ``params`` of ``(W_l, b_l)`` pairs in the ``nn.Linear`` layout, so that every method,
the exporter and the estimator share one representation.  Convolution and pooling layers will
join :class:`Dense` as further layer kinds with the same ``forward`` / ``n_params`` interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .activations import get_activation

LOSSES = ("ce", "mse")
Params = list[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class Dense:
    """A fully connected layer ``U = X @ W.T + b`` followed by ``activation`` (a registry key).

    The last layer of a network carries the output activation: ``"identity"`` for ``mse``, and
    ``"simplex"`` (the lifted model's probability output, paper 004 (15)) for ``ce``.
    """

    in_features: int
    out_features: int
    activation: str = "relu"

    def __post_init__(self) -> None:
        if self.in_features < 1 or self.out_features < 1:
            raise ValueError(
                f"layer sizes must be >= 1, got {self.in_features}->{self.out_features}"
            )
        get_activation(self.activation)  # raises on an unknown name

    def forward(self, X: Tensor, W: Tensor, b: Tensor) -> Tensor:
        """Pre-activation ``X @ W.T + b``: X (N, in), W (out, in), b (out,) -> (N, out)."""
        return torch.addmm(b, X, W.T)


@dataclass(frozen=True)
class Network:
    """A feed-forward network: ``layers[l]`` maps X_l to X_{l+1} (paper 004 (1))."""

    layers: tuple[Dense, ...]
    loss: str = "ce"

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("a network needs at least one layer")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for l, layer in enumerate(self.layers[:-1]):
            if not get_activation(layer.activation).elementwise:
                raise ValueError(
                    f"hidden layer {l + 1}: activation {layer.activation!r} changes the width; "
                    "dense hidden layers need an elementwise activation"
                )
        for a, b in zip(self.layers[:-1], self.layers[1:], strict=False):
            if a.out_features != b.in_features:
                raise ValueError(
                    f"layer sizes do not chain: {a.out_features} outputs feed "
                    f"{b.in_features} inputs"
                )

    @property
    def sizes(self) -> tuple[int, ...]:
        """Widths ``(d_0, d_1, ..., d_{L+1})``."""
        return (self.layers[0].in_features,) + tuple(layer.out_features for layer in self.layers)

    @property
    def spec(self) -> str:
        """The architecture string, e.g. ``"784-300-10"``."""
        return "-".join(str(s) for s in self.sizes)

    @property
    def n_hidden(self) -> int:
        """Number L of hidden layers (lifted activation variables)."""
        return len(self.layers) - 1

    def init_params(
        self,
        *,
        generator: torch.Generator | None = None,
        scheme: str = "xavier",
        bias: float = 0.0,
        std: float | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Params:
        """Random parameters: ``scheme`` in ``normal`` (N(0, std^2), std defaulting to sqrt(0.1)
        as in paper 004 Table 1), ``xavier`` (Glorot uniform), ``variance_scaling`` (He normal,
        N(0, 2 / fan_in)); biases ``bias``."""
        sd = 0.1**0.5 if std is None else float(std)
        params: Params = []
        for layer in self.layers:
            fan_in, fan_out = layer.in_features, layer.out_features
            shape = (fan_out, fan_in)
            if scheme == "normal":
                W = torch.randn(shape, generator=generator, dtype=dtype) * sd
            elif scheme == "xavier":
                a = (6.0 / (fan_in + fan_out)) ** 0.5
                W = (torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) * a
            elif scheme == "variance_scaling":
                W = torch.randn(shape, generator=generator, dtype=dtype) * (2.0 / fan_in) ** 0.5
            else:
                raise ValueError(
                    f"init scheme must be normal, xavier or variance_scaling, got {scheme!r}"
                )
            b = torch.full((fan_out,), float(bias), dtype=dtype)
            params.append((W.to(device), b.to(device)))
        return params

    def forward(self, params: Params, X: Tensor) -> Tensor:
        """Feed-forward rule (paper 004 (2)); returns the last layer's pre-activation (logits)."""
        self.check_params(params)
        for l, (layer, (W, b)) in enumerate(zip(self.layers, params, strict=True)):
            X = layer.forward(X, W, b)
            if l < len(self.layers) - 1:
                X = get_activation(layer.activation).map(X)
        return X

    def forward_all(self, params: Params, X: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Feed-forward pass keeping every layer: ``(acts, pre)`` with acts = [X_1..X_L]
        (hidden activations) and pre = [U_0..U_L] (pre-activations, U_L the output logits)."""
        acts: list[Tensor] = []
        pre: list[Tensor] = []
        for l, (layer, (W, b)) in enumerate(zip(self.layers, params, strict=True)):
            U = layer.forward(X, W, b)
            pre.append(U)
            if l < len(self.layers) - 1:
                X = get_activation(layer.activation).map(U)
                acts.append(X)
        return acts, pre

    def outputs(self, params: Params, X: Tensor, batch_size: int = 8192) -> Tensor:
        """Feed-forward outputs of X in chunks of ``batch_size`` rows, without gradients."""
        with torch.no_grad():
            outs = [self.forward(params, X[i : i + batch_size])
                    for i in range(0, len(X), batch_size)]
        return torch.cat(outs) if outs else X.new_zeros((0, self.sizes[-1]))

    def predict(self, params: Params, X: Tensor, batch_size: int = 8192) -> Tensor:
        """Class labels (argmax of the output) for ``ce``; the outputs themselves for ``mse``."""
        out = self.outputs(params, X, batch_size)
        return out.argmax(dim=1) if self.loss == "ce" else out

    def check_params(self, params: Params) -> None:
        """Raise ValueError if ``params`` do not fit this network's shapes."""
        if len(params) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} (W, b) pairs, got {len(params)}")
        for l, (layer, (W, b)) in enumerate(zip(self.layers, params, strict=True)):
            want = (layer.out_features, layer.in_features)
            if tuple(W.shape) != want or tuple(b.shape) != (layer.out_features,):
                raise ValueError(
                    f"layer {l}: expected W {want} and b ({layer.out_features},), "
                    f"got W {tuple(W.shape)} and b {tuple(b.shape)}"
                )


def parse_arch(spec: str | Sequence[int]) -> tuple[int, ...]:
    """Parse ``"784-300-10"`` (or a sequence of ints) into layer widths, with a clear error."""
    if isinstance(spec, str):
        parts = [p.strip() for p in spec.replace(",", "-").split("-") if p.strip()]
        try:
            sizes = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(
                f"architecture must look like '784-300-10' (widths joined by '-'), got {spec!r}"
            ) from None
    else:
        sizes = tuple(int(s) for s in spec)
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(
            f"architecture needs an input and an output width, all >= 1, got {spec!r}"
        )
    return sizes


def mlp(spec: str | Sequence[int], *, activation: str = "relu", loss: str = "ce") -> Network:
    """A dense network from ``"784-300-10"``: ``activation`` on every hidden layer; the output
    layer gets ``simplex`` for ``ce`` and ``identity`` for ``mse``."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    sizes = parse_arch(spec)
    out_act = "simplex" if loss == "ce" else "identity"
    layers = tuple(
        Dense(d_in, d_out, activation if l < len(sizes) - 2 else out_act)
        for l, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
    )
    return Network(layers, loss)
