"""Network descriptions: layers, architectures and the plain feed-forward rule.

A :class:`Network` is a description only (sizes, activations, loss); the parameters live apart,
as a list ``params`` of ``(W_l, b_l)`` pairs in the ``nn.Linear`` layout, so that every method,
the exporter and the estimator share one representation.  Layer kinds (dense, convolution, each
with optional average pooling of its input) live in :mod:`liftnet.layers`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .activations import get_activation
from .layers import Conv2d, Dense, Layer

LOSSES = ("ce", "mse")
#: the output layer's activation for each loss: the network outputs the last pre-activation
#: (logits for ``ce``, whose probabilities are their projection onto the simplex / softmax;
#: the prediction itself for ``mse``), which is what every method trains and ``to_torch``
#: exports, so no other output activation has a meaning
OUTPUT_ACTIVATIONS = {"ce": "simplex", "mse": "identity"}
Params = list[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class Network:
    """A feed-forward network: ``layers[l]`` maps X_l to X_{l+1} (paper 004 (1))."""

    layers: tuple[Layer, ...]
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
                    "hidden layers need an elementwise activation"
                )
        for a, b in zip(self.layers[:-1], self.layers[1:], strict=False):
            if a.out_features != b.input_size:
                raise ValueError(
                    f"layer sizes do not chain: {a.out_features} outputs feed "
                    f"{b.input_size} inputs"
                )
            if isinstance(a, Conv2d) and getattr(b, "in_shape", None) not in (None, a.out_shape):
                raise ValueError(
                    f"layer shapes do not chain: a convolution's output {a.out_shape} feeds an "
                    f"input of shape {b.in_shape}"
                )
            if not isinstance(a, Conv2d) and (isinstance(b, Conv2d) or b.pool > 1):
                what = "a convolution" if isinstance(b, Conv2d) else "pooling"
                raise ValueError(
                    f"{what} needs an image input: it cannot follow a dense layer (images go "
                    "through convolutions and pooling first, then dense layers, as in "
                    "'1x28x28-conv6k5p2-pool2-conv16k5-pool2-120-84-10')"
                )
        out_act, want = self.layers[-1].activation, OUTPUT_ACTIVATIONS[self.loss]
        if out_act != want:
            raise ValueError(
                f"the output layer's activation must be {want!r} for loss {self.loss!r} (the "
                f"network outputs the last layer's pre-activation, which the methods train and "
                f"to_torch exports), got {out_act!r}; put other activations on hidden layers"
            )

    @property
    def plain(self) -> bool:
        """Dense layers only, without pooling (what every method supports)."""
        return all(layer.plain for layer in self.layers)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Widths ``(d_0, d_1, ..., d_{L+1})``."""
        return (self.layers[0].input_size,) + tuple(layer.out_features for layer in self.layers)

    @property
    def spec(self) -> str:
        """The architecture string, e.g. ``"784-300-10"`` or, with convolutions,
        ``"1x28x28-conv6k5p2-pool2-conv16k5-pool2-120-84-10"`` (see :func:`network`)."""
        if self.plain:
            return "-".join(str(s) for s in self.sizes)
        first = self.layers[0]
        shape = getattr(first, "in_shape", None)
        tokens = ["x".join(map(str, shape)) if shape else str(first.input_size)]
        for layer in self.layers:
            if layer.pool > 1:
                tokens.append(f"pool{layer.pool}")
            if isinstance(layer, Conv2d):
                pad = f"p{layer.padding}" if layer.padding else ""
                tokens.append(f"conv{layer.out_channels}k{layer.kernel_size}{pad}")
            else:
                tokens.append(str(layer.out_features))
        return "-".join(tokens)

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
            fan_in, fan_out = layer.fans
            shape = layer.weight_shape
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
            b = torch.full((shape[0],), float(bias), dtype=dtype)
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
        width = self.layers[0].input_size
        if not isinstance(X, Tensor) or X.ndim != 2 or X.shape[1] != width:
            shape = tuple(X.shape) if isinstance(X, Tensor) else type(X).__name__
            raise ValueError(f"expected inputs of shape (N, {width}) for {self.spec}, got {shape}")
        if (isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral)
                or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.check_params(params)
        W = params[0][0]
        if X.dtype != W.dtype or X.device != W.device:
            raise ValueError(f"inputs are {X.dtype} on {X.device} but the weights {W.dtype} on "
                             f"{W.device}: convert one to the other (e.g. X.to(W.dtype))")
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
        for l, (layer, pair) in enumerate(zip(self.layers, params, strict=True)):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2
                    and all(isinstance(t, Tensor) and t.is_floating_point() for t in pair)):
                raise ValueError(f"layer {l}: expected a (W, b) pair of real floating-point "
                                 f"tensors, got {type(pair).__name__}")
            W, b = pair
            want = layer.weight_shape
            if tuple(W.shape) != want or tuple(b.shape) != (want[0],):
                raise ValueError(
                    f"layer {l}: expected W {want} and b ({want[0]},), "
                    f"got W {tuple(W.shape)} and b {tuple(b.shape)}"
                )
            first = params[0][0]
            if any(t.dtype != first.dtype or t.device != first.device for t in pair):
                raise ValueError(
                    f"layer {l}: W is {W.dtype} on {W.device} and b {b.dtype} on {b.device}, "
                    f"but the first layer's W {first.dtype} on {first.device}: every parameter "
                    "needs one dtype and device")


def parse_arch(spec: str | Sequence[int]) -> tuple[int, ...]:
    """Parse ``"784-300-10"`` (or a sequence of ints) into layer widths, with a clear error."""
    if isinstance(spec, (bytes, bytearray, memoryview)):
        raise TypeError(f"architecture must be a str like '784-300-10' or a sequence of integer "
                        f"widths, got {type(spec).__name__} {bytes(spec)!r}: decode it first")
    if isinstance(spec, str):
        parts = [p.strip() for p in spec.replace(",", "-").split("-")]
        if not all(_digits(p) for p in parts):
            raise ValueError(
                f"architecture must look like '784-300-10' (widths joined by '-'), got {spec!r}"
            )
        sizes = tuple(int(p) for p in parts)
    elif isinstance(spec, Sequence) and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in spec):
        sizes = tuple(int(s) for s in spec)
    else:
        raise ValueError(f"architecture must be a string like '784-300-10' or a sequence of "
                         f"integer widths, got {spec!r}")
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(
            f"architecture needs an input and an output width, all >= 1, got {spec!r}"
        )
    _check_sizes(spec, sizes)
    return sizes


MAX_SIZE = 2**31 - 1  # widths, channels, kernels, paddings and pooling factors


def _check_sizes(spec: object, sizes: Sequence[int]) -> None:
    big = [s for s in sizes if s > MAX_SIZE]
    if big:
        raise ValueError(f"architecture {spec!r}: {big[0]} is too large (every size must be "
                         f"at most 2**31 - 1)")


def mlp(spec: str | Sequence[int], *, activation: str = "relu", loss: str = "ce") -> Network:
    """A dense network from ``"784-300-10"``: ``activation`` on every hidden layer; the output
    layer gets ``simplex`` for ``ce`` and ``identity`` for ``mse``."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    sizes = parse_arch(spec)
    out_act = OUTPUT_ACTIVATIONS[loss]
    layers = tuple(
        Dense(d_in, d_out, activation if l < len(sizes) - 2 else out_act)
        for l, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
    )
    return Network(layers, loss)


_CONV = re.compile(r"conv(\d+)k(\d+)(?:p(\d+))?", re.ASCII)  # ASCII: "²" is no number
_POOL = re.compile(r"pool(\d+)", re.ASCII)
_SHAPE = re.compile(r"(\d+)x(\d+)x(\d+)", re.ASCII)


def _digits(token: str) -> bool:
    """0-9 only (str.isdigit also takes superscripts and other scripts' digits)."""
    return token.isascii() and token.isdigit()


def lenet5_spec(in_shape: tuple[int, int, int] = (1, 28, 28), n_out: int = 10) -> str:
    """LeNet-5 as in paper 003 section 5.2: conv 6@5x5, average pool 2, conv 16@5x5, average
    pool 2, dense 120, 84, n_out, ReLU.  28x28 inputs are zero-padded to 32x32 by the first
    convolution (padding 2, the authors' padding of the images).  Smaller images are refused
    with a message (the network is the paper's, for 28x28 pixels and up)."""
    if len(in_shape) != 3:
        raise ValueError(f"LeNet-5 needs an image shape (C, H, W), got {tuple(in_shape)}")
    c, h, w = (int(s) for s in in_shape)
    if min(h, w) < 28:
        raise ValueError(f"LeNet-5 needs images of at least 28x28 pixels, got {h}x{w}")
    if (h, w) != (28, 28) and (h % 4 or w % 4):
        raise ValueError(f"LeNet-5 takes 28x28 images or sides that are multiples of 4 from 32 "
                         f"up (two 5x5 convolutions, each followed by pooling by 2), got "
                         f"{h}x{w}; crop or pad the images, or write the architecture "
                         "yourself (--arch CxHxW-conv6k5p<pad>-pool2-...)")
    pad = "p2" if (h, w) == (28, 28) else ""
    return f"{c}x{h}x{w}-conv6k5{pad}-pool2-conv16k5-pool2-120-84-{n_out}"


def network(
    spec: str | Sequence[int],
    *,
    activation: str = "relu",
    loss: str = "ce",
    activations: Sequence[str] | None = None,
) -> Network:
    """A network from an architecture string.

    Dense: ``"784-300-10"`` (as :func:`mlp`).  With convolutions the first token is the input
    image shape ``CxHxW`` and each further token is ``conv<C>k<k>[p<pad>]`` (a convolution with
    C output channels, a k x k kernel and zero padding), ``pool<p>`` (average pooling by p of the
    next layer's input, paper 003 (11)) or a width (a dense layer; the image before it is
    flattened), e.g. LeNet-5 ``"1x28x28-conv6k5p2-pool2-conv16k5-pool2-120-84-10"``.
    ``activation`` goes on every hidden layer (or ``activations``, one per layer, the last being
    the output's), the output layer gets ``simplex`` for ``ce`` and ``identity`` for ``mse``.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    tokens = [t.strip() for t in spec.split("-")] if isinstance(spec, str) else []
    if not tokens or not _SHAPE.fullmatch(tokens[0]) and not any(
            _CONV.fullmatch(t) or _POOL.fullmatch(t) for t in tokens):
        net = mlp(spec, activation=activation, loss=loss)
        return _with_activations(net, activations)
    _check_sizes(spec, [int(n) for n in re.findall(r"\d+", spec, re.ASCII)])
    shape: tuple[int, int, int] | None = None
    if m := _SHAPE.fullmatch(tokens[0]):
        shape = (int(m[1]), int(m[2]), int(m[3]))
        width = math.prod(shape)
        if width > MAX_SIZE:
            raise ValueError(f"architecture {spec!r}: the input {tokens[0]} has {width} "
                             "values, more than 2**31 - 1")
    elif _digits(tokens[0]):
        width = int(tokens[0])
    else:
        raise ValueError(f"architecture {spec!r}: the first token must be a width or CxHxW")
    out_act = OUTPUT_ACTIVATIONS[loss]
    layers: list[Layer] = []
    pool = 1
    body = tokens[1:]
    for i, tok in enumerate(body):
        act = activation if i < len(body) - 1 else out_act
        if m := _POOL.fullmatch(tok):
            if i > 0 and _POOL.fullmatch(body[i - 1]):
                raise ValueError(f"architecture {spec!r}: two pooling tokens in a row; write "
                                 f"one, pool<p> with p their product (pool2-pool2 is pool4)")
            pool = int(m[1])
            if i == len(body) - 1:
                raise ValueError(f"architecture {spec!r}: pooling must be followed by a layer")
            continue
        if m := _CONV.fullmatch(tok):
            if shape is None and layers:
                raise ValueError(f"architecture {spec!r}: a convolution cannot follow a dense "
                                 f"layer (its output is a vector, not an image)")
            if shape is None:
                raise ValueError(
                    f"architecture {spec!r}: a convolution needs an image input; start the "
                    "architecture with its shape CxHxW, e.g. 1x28x28"
                )
            layer: Layer = Conv2d(shape, int(m[1]), int(m[2]), int(m[3] or 0), pool, act)
            shape, width = layer.out_shape, layer.out_features
        elif _digits(tok):
            in_shape = shape if pool > 1 else None
            d_in = math.prod((shape[0], shape[1] // pool, shape[2] // pool)) if (
                pool > 1 and shape is not None) else width
            if pool > 1 and shape is None:
                raise ValueError(f"architecture {spec!r}: pooling needs an image input")
            layer = Dense(d_in, int(tok), act, pool, in_shape)
            shape, width = None, layer.out_features
        else:
            raise ValueError(
                f"architecture {spec!r}: cannot read {tok!r} (expected a width, conv<C>k<k>[p<P>]"
                " or pool<P>)"
            )
        if layer.out_features > MAX_SIZE:
            raise ValueError(f"architecture {spec!r}: {tok} outputs {layer.out_features} "
                             "values, more than 2**31 - 1")
        layers.append(layer)
        pool = 1
    if not layers or not isinstance(layers[-1], Dense):
        raise ValueError(f"architecture {spec!r}: the output layer must be dense")
    return _with_activations(Network(tuple(layers), loss), activations)


def _with_activations(net: Network, activations: Sequence[str] | None) -> Network:
    if activations is None:
        return net
    if len(activations) != len(net.layers):
        raise ValueError(f"{len(activations)} activations for {len(net.layers)} layers")
    layers = tuple(dataclasses.replace(layer, activation=a)
                   for layer, a in zip(net.layers, activations, strict=True))
    return Network(layers, net.loss)
