"""Layer kinds of a network description: dense and convolutional, each with optional average
pooling of its input.

Every layer maps a flat batch-first activation ``X`` of shape ``(N, input_size)`` to a flat
pre-activation ``U`` of shape ``(N, out_features)`` by a linear map with parameters ``(W, b)``
(``nn.Linear`` / ``nn.Conv2d`` layouts), and optionally average-pools its input first: the
sequence Pool -> Conv -> Activation of paper 003 (11), ``B(X_{l+1}, W * Pool(X_l))``.  Images
are stored flat, channel-major ``(C, H, W)`` like ``torch.flatten``, so "flatten" is implicit.

For the lifted methods a layer also exposes its linear structure:

* ``adjoint(G, W)``: the transpose of ``X -> forward(X, W, 0)`` applied to ``G (N, out_features)``
  (what ``G @ W`` is for a dense layer), for the X-steps;
* ``patches(X)`` and ``to_rows(U)``: the design matrix (rows = samples for a dense layer, samples
  times output positions for a convolution) and the matching target rows, such that
  ``to_rows(forward(X, W, b)) == patches(X) @ W.reshape(W.shape[0], -1).T + b``: every W-step is
  then a regression on rows, whatever the layer kind;
* ``design(X)``: the same regression as a linear map in the layer's own layout (a
  :class:`~liftnet.solvers.majorize.Design`): for a convolution ``conv2d`` on the images and a
  batched product with the patches, 2-3x faster than the products with the im2col rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .activations import get_activation
from .solvers.majorize import RowDesign

Shape3 = tuple[int, int, int]


def _pooled(shape: Shape3, pool: int) -> Shape3:
    c, h, w = shape
    return (c, h // pool, w // pool)


def _check_pool(shape: Shape3 | None, pool: int, what: str) -> None:
    if pool < 1:
        raise ValueError(f"{what}: pooling size must be >= 1, got {pool}")
    if pool > 1:
        if shape is None:
            raise ValueError(f"{what}: pooling needs the input's (C, H, W) shape")
        if shape[1] % pool or shape[2] % pool:
            raise ValueError(
                f"{what}: average pooling by {pool} needs H and W divisible by {pool}, "
                f"got input shape {shape}"
            )


def _pool(X: Tensor, shape: Shape3 | None, pool: int) -> Tensor:
    """Average pooling (kernel = stride = pool) of flat images X (N, C*H*W) -> (N, C, H', W')
    images; without pooling, X viewed as images (or returned as is when ``shape`` is None)."""
    if shape is None:
        return X
    Xi = X.reshape(X.shape[0], *shape)
    if pool == 1:
        return Xi
    return _avg_pool_cpu(Xi, pool) if Xi.device.type == "cpu" else F.avg_pool2d(Xi, pool)


def _avg_pool_cpu(Xi: Tensor, pool: int) -> Tensor:
    """``F.avg_pool2d(Xi, pool)`` bit for bit (each window summed row by row, in the kernel's
    order, then divided by pool^2) as pool^2 strided additions: torch's CPU kernel for NCHW
    images takes 2-3 times as long (LeNet-5's X-steps pool hundreds of times per batch)."""
    n, c, h, w = Xi.shape
    r = Xi.reshape(n, c, h // pool, pool, w // pool, pool)
    out = r[:, :, :, 0, :, 0] + r[:, :, :, 0, :, 1]
    for i in range(pool):
        for j in range(2 if i == 0 else 0, pool):
            out.add_(r[:, :, :, i, :, j])
    return out.div_(pool * pool)


def _unpool(G: Tensor, pool: int) -> Tensor:
    """Adjoint of :func:`_pool` on images G (N, C, H', W') -> flat (N, C*H*W)."""
    if pool > 1:  # every value spread over its pool x pool block
        n, c, h, w = G.shape
        G = G / pool**2
        if G.device.type == "cpu":  # pool^2 strided copies: half the time of one copy of
            out = G.new_empty(n, c, h, pool, w, pool)  # the expanded view on a CPU
            for i in range(pool):
                for j in range(pool):
                    out[:, :, :, i, :, j] = G
            return out.reshape(n, -1)
        G = G[:, :, :, None, :, None].expand(n, c, h, pool, w, pool)
    return G.reshape(G.shape[0], -1)


@dataclass(frozen=True)
class Dense:
    """A fully connected layer ``U = Pool(X) @ W.T + b`` followed by ``activation``.

    ``in_features`` is the width W sees (after pooling).  With ``pool > 1`` the incoming
    activation is an image of shape ``in_shape`` (C, H, W), average-pooled and flattened first.
    The last layer of a network carries the output activation: ``"identity"`` for ``mse`` and
    ``"simplex"`` (the lifted model's probability output, paper 004 (15)) for ``ce``.
    """

    in_features: int
    out_features: int
    activation: str = "relu"
    pool: int = 1
    in_shape: Shape3 | None = None

    def __post_init__(self) -> None:
        _check_pool(self.in_shape, self.pool, "dense layer")  # first: a misfit pool gives 0 inputs
        if self.in_features < 1 or self.out_features < 1:
            raise ValueError(
                f"layer sizes must be >= 1, got {self.in_features}->{self.out_features}"
            )
        get_activation(self.activation)  # raises on an unknown name
        if self.in_shape is not None and math.prod(_pooled(self.in_shape, self.pool)) != (
                self.in_features):
            raise ValueError(
                f"dense layer: input {self.in_shape} pooled by {self.pool} has "
                f"{math.prod(_pooled(self.in_shape, self.pool))} features, not {self.in_features}"
            )

    @property
    def plain(self) -> bool:
        """A dense layer without pooling: what every method supports."""
        return self.pool == 1

    @property
    def input_size(self) -> int:
        """Flat width of the incoming activation (before pooling)."""
        return math.prod(self.in_shape) if self.in_shape is not None else self.in_features

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_features, self.in_features)

    @property
    def fans(self) -> tuple[int, int]:
        """(fan_in, fan_out) of the weights, for the initialisation schemes."""
        return self.in_features, self.out_features

    def forward(self, X: Tensor, W: Tensor, b: Tensor) -> Tensor:
        """Pre-activation ``Pool(X) @ W.T + b``: X (N, input_size) -> (N, out_features)."""
        if self.pool > 1:
            X = _pool(X, self.in_shape, self.pool).reshape(X.shape[0], -1)
        return torch.addmm(b, X, W.T)

    def adjoint(self, G: Tensor, W: Tensor) -> Tensor:
        """``G @ W`` (then the pooling's adjoint): G (N, out_features) -> (N, input_size)."""
        out = G @ W
        if self.pool > 1:
            out = _unpool(out.reshape(len(G), *_pooled(self.in_shape, self.pool)), self.pool)
        return out

    def patches(self, X: Tensor) -> Tensor:
        """Design rows of the W-step: Pool(X) flattened, (N, in_features)."""
        return _pool(X, self.in_shape, self.pool).reshape(X.shape[0], -1) if self.pool > 1 else X

    def design(self, X: Tensor) -> RowDesign:
        """The W-step's design: the rows :meth:`patches`, outputs (N, out_features)."""
        return RowDesign(self.patches(X))

    def to_rows(self, U: Tensor) -> Tensor:
        return U

    def from_rows(self, R: Tensor, n: int) -> Tensor:
        return R


@dataclass(frozen=True)
class Conv2d:
    """A convolution ``U = W * Pool(X) + b`` (stride 1, zero ``padding``) then ``activation``
    (paper 003 (10)-(11)); W has the ``nn.Conv2d`` layout ``(out_channels, C, k, k)``."""

    in_shape: Shape3
    out_channels: int
    kernel_size: int
    padding: int = 0
    pool: int = 1
    activation: str = "relu"

    def __post_init__(self) -> None:
        if len(self.in_shape) != 3 or min(self.in_shape) < 1:
            raise ValueError(f"conv layer: input shape must be (C, H, W) >= 1, got {self.in_shape}")
        if self.out_channels < 1 or self.kernel_size < 1 or self.padding < 0:
            raise ValueError(
                f"conv layer: need out_channels >= 1, kernel_size >= 1, padding >= 0, got "
                f"{self.out_channels}, {self.kernel_size}, {self.padding}"
            )
        _check_pool(self.in_shape, self.pool, "conv layer")
        _, h, w = self.out_shape
        if h < 1 or w < 1:
            raise ValueError(
                f"conv layer: kernel {self.kernel_size} with padding {self.padding} does not fit "
                f"the input {_pooled(self.in_shape, self.pool)}"
            )
        get_activation(self.activation)

    @property
    def plain(self) -> bool:
        return False

    @property
    def pooled_shape(self) -> Shape3:
        return _pooled(self.in_shape, self.pool)

    @property
    def out_shape(self) -> Shape3:
        _, h, w = self.pooled_shape
        k, p = self.kernel_size, self.padding
        return (self.out_channels, h + 2 * p - k + 1, w + 2 * p - k + 1)

    @property
    def input_size(self) -> int:
        return math.prod(self.in_shape)

    @property
    def in_features(self) -> int:
        return math.prod(self.pooled_shape)

    @property
    def out_features(self) -> int:
        return math.prod(self.out_shape)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        k = self.kernel_size
        return (self.out_channels, self.in_shape[0], k, k)

    @property
    def fans(self) -> tuple[int, int]:
        k2 = self.kernel_size**2
        return self.in_shape[0] * k2, self.out_channels * k2

    def forward(self, X: Tensor, W: Tensor, b: Tensor) -> Tensor:
        """Pre-activation, flat: X (N, input_size) -> (N, out_features)."""
        Xi = _pool(X, self.in_shape, self.pool)
        return F.conv2d(Xi, W, b, padding=self.padding).reshape(X.shape[0], -1)

    def adjoint(self, G: Tensor, W: Tensor) -> Tensor:
        """Transpose of the convolution (and pooling): G (N, out_features) -> (N, input_size)."""
        Gi = G.reshape(len(G), *self.out_shape)
        Xi = F.conv_transpose2d(Gi, W, padding=self.padding)
        return _unpool(Xi, self.pool)

    def patches(self, X: Tensor) -> Tensor:
        """im2col rows: (N * positions, C*k*k), in the order of ``W.reshape(out, -1)``."""
        return _im2col(self._padded(X), self.kernel_size)

    def design(self, X: Tensor) -> ConvDesign:
        """The W-step's design in the layer's layout: outputs (N, out_features) channel-major,
        as :meth:`forward`; its ``rows`` are :meth:`patches`."""
        return ConvDesign(self._padded(X), self.kernel_size)

    def _padded(self, X: Tensor) -> Tensor:
        """Pool(X) as images, zero-padded: (N, C, H + 2 padding, W + 2 padding)."""
        Xi = _pool(X, self.in_shape, self.pool)
        p = self.padding
        return F.pad(Xi, (p, p, p, p)) if p else Xi

    def to_rows(self, U: Tensor) -> Tensor:
        """(N, out_channels*P) -> (N*P, out_channels)."""
        n = U.shape[0]
        return U.reshape(n, self.out_channels, -1).transpose(1, 2).reshape(-1, self.out_channels)

    def from_rows(self, R: Tensor, n: int) -> Tensor:
        """Inverse of :meth:`to_rows`."""
        return R.reshape(n, -1, self.out_channels).transpose(1, 2).reshape(n, -1)


def _im2col(Xi: Tensor, k: int) -> Tensor:
    """Rows (N * H' * W', C*k*k) of the k x k windows of images Xi (N, C, H, W), stride 1."""
    # windows as a view (N, C, H', W', k, k), copied once into rows (N, H', W', C, k, k):
    # the same matrix as F.unfold followed by a transpose, in half the time
    view = Xi.unfold(2, k, 1).unfold(3, k, 1)
    return view.permute(0, 2, 3, 1, 4, 5).reshape(-1, Xi.shape[1] * k * k)


class ConvDesign:
    """A convolution's W-step design (:class:`~liftnet.solvers.majorize.Design`) on padded
    images Xi (N, C, H, W): ``apply`` is ``conv2d`` (outputs (N, out * positions), channel-major),
    ``adjoint`` its weight gradient: oneDNN's, or for one input channel (where that is 3x
    slower) the sum of the per-image products G_n (out, positions) @ rows_n (positions, k*k)."""

    def __init__(self, Xi: Tensor, k: int) -> None:
        self.images, self.k = Xi, k
        self.rows = _im2col(Xi, k)
        self.signed = bool((Xi < 0).any())  # the rows are copies of these numbers (and zeros)

    def _kernel_shape(self, m: int) -> tuple[int, int, int, int]:
        return (m, self.images.shape[1], self.k, self.k)

    def apply(self, W: Tensor, b: Tensor) -> Tensor:
        # contiguous: the MM loop passes column slices of [W, b]
        Wk = W.reshape(self._kernel_shape(W.shape[0])).contiguous()
        return F.conv2d(self.images, Wk, b.contiguous()).reshape(self.images.shape[0], -1)

    def adjoint(self, G: Tensor) -> tuple[Tensor, Tensor]:
        n, c = self.images.shape[:2]
        m = G.shape[1] * n // self.rows.shape[0]  # G: (N, m * positions)
        Gn = G.reshape(n, m, -1)
        if c == 1:
            gW = torch.bmm(Gn, self.rows.view(n, -1, self.rows.shape[1])).sum(0)
        else:
            h = self.images.shape[2] - self.k + 1
            gW = torch.nn.grad.conv2d_weight(self.images, self._kernel_shape(m),
                                             Gn.reshape(n, m, h, -1)).reshape(m, -1)
        return gW, Gn.sum((0, 2))


Layer = Dense | Conv2d
