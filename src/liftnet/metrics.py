"""Targets and scores shared by every method."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .activations import get_activation
from .data import one_hot
from .graph import Network, Params


def is_classification(y: Tensor) -> bool:
    """Integer labels mean classification; float targets mean regression."""
    return not torch.is_floating_point(y)


def targets_for(net: Network, y: Tensor, dtype: torch.dtype) -> Tensor:
    """The target matrix Y (N, d_out): one-hot rows for labels, the targets themselves otherwise."""
    k = net.sizes[-1]
    if is_classification(y):
        return one_hot(y, k, dtype)
    if net.loss == "ce":
        raise ValueError("cross-entropy needs integer class labels, got float targets")
    if y.ndim > 2:
        raise ValueError(f"targets must be (N,) or (N, outputs), got shape {tuple(y.shape)}")
    Y = y.to(dtype)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.shape[1] != k:
        raise ValueError(f"targets have {Y.shape[1]} columns but the network outputs {k}")
    return Y


def _check_rows(X: Tensor, y: Tensor) -> None:
    """One label or target row per input row (a broadcast would give a wrong score)."""
    if y.ndim == 0 or len(y) != len(X):
        raise ValueError(f"inputs and labels/targets differ in length: {len(X)} rows against "
                         f"{tuple(y.shape)}")


def accuracy(net: Network, params: Params, X: Tensor, y: Tensor) -> float | None:
    """Share of correctly classified rows with the feed-forward rule (None for regression)."""
    if not is_classification(y):
        return None
    _check_rows(X, y)
    if y.ndim != 1:
        raise ValueError(f"labels must be a 1-D tensor (N,), got shape {tuple(y.shape)}")
    if len(y) == 0:
        return None
    pred = net.outputs(params, X).argmax(dim=1)
    return float((pred == y).double().mean())


def squared_error(net: Network, params: Params, X: Tensor, y: Tensor,
                  out: Tensor | None = None) -> float:
    """Mean over the samples of ||output - Y||^2 in float64 (Y one-hot for labels; ``out``:
    the outputs where the caller has them): the regression loss of the history and of
    :func:`evaluate`."""
    _check_rows(X, y)
    if out is None:
        out = net.outputs(params, X)
    diff = out.double() - targets_for(net, y, torch.float64)
    return float((diff**2).sum(1).mean())


def evaluate(net: Network, params: Params, X: Tensor, y: Tensor, *,
             probabilities: Callable[[Tensor], Tensor] | None = None) -> dict:
    """Scores of the feed-forward rule on (X, y), as a JSON-ready record.

    ``n``; ``loss``: the mean cross-entropy of the class probabilities (``ce``: the softmax of
    the outputs, or ``probabilities(outputs)``, a method's own, e.g. ``lifted``'s projection
    onto the simplex, clipped below at float64's machine epsilon as scikit-learn's
    ``log_loss`` does) or the mean over samples of ||output - Y||^2 (``mse``; Y one-hot for
    labels); for labels also ``accuracy`` and ``confusion`` (k x k counts, row = true class,
    column = predicted class).
    """
    from .training import check_inputs  # training imports this module

    check_inputs(net, X, y, "evaluation")  # shapes, NaN, labels in range: clear errors
    net.check_params(params)
    W = params[0][0]
    if X.dtype != W.dtype or X.device != W.device:
        raise ValueError(f"evaluation inputs ({X.dtype}, {X.device}) must match the weights "
                         f"({W.dtype}, {W.device})")
    k = net.sizes[-1]
    out = net.outputs(params, X).double()
    Y = targets_for(net, y, torch.float64)
    if net.loss == "ce" and probabilities is not None:
        logp = probabilities(out).double().clamp_min(torch.finfo(torch.float64).eps).log()
        loss = float(-(Y * logp).sum(1).mean())
    elif net.loss == "ce":
        loss = float(-(Y * torch.log_softmax(out, dim=1)).sum(1).mean())
    else:
        loss = squared_error(net, params, X, y, out)
    record: dict = {"n": len(X), "loss": loss}
    if is_classification(y):
        pred = out.argmax(1)
        record["accuracy"] = float((pred == y).double().mean())
        confusion = torch.zeros(k * k, dtype=torch.int64)
        confusion.index_add_(0, (y * k + pred).cpu(), torch.ones(len(y), dtype=torch.int64))
        record["confusion"] = confusion.reshape(k, k).tolist()
    return record


#: where an activation that is not a projection onto a box acts as the identity map
#: (sigma(u) = u), as a test on u; a box activation does so on the interior of its box
_LINEAR_REGION = {
    "leaky_relu": lambda u: u > 0,
}


def _linear_region(name: str):
    """The test u -> (sigma(u) = u) of activation ``name``, or None where there is none."""
    if name in _LINEAR_REGION:
        return _LINEAR_REGION[name]
    box = get_activation(name).box
    if box is None:
        return None
    lower, upper = box

    def inside(u: Tensor) -> Tensor:
        mask = torch.ones_like(u, dtype=torch.bool)
        if lower is not None:
            mask &= u > lower
        if upper is not None:
            mask &= u < upper
        return mask

    return inside

LINEAR_SHARE_DEFINITION = (
    "share of (unit, sample) pairs of the data at which the hidden layer's activation acts as "
    "the identity in the feed-forward pass (ReLU: pre-activation > 0)"
)


def linear_share(net: Network, params: Params, X: Tensor,
                 batch_size: int = 8192) -> list[float | None]:
    """For each hidden layer, the share of (unit, sample) pairs of X at which its activation
    acts as the identity in the feed-forward pass (ReLU: pre-activation u > 0; paper 001's
    Table 3); None for activations that are nowhere the identity (sigmoid, tanh, ...)."""
    counts = [0] * net.n_hidden
    tests = [_linear_region(net.layers[l].activation) for l in range(net.n_hidden)]
    with torch.no_grad():
        for i in range(0, len(X), batch_size):
            _, pre = net.forward_all(params, X[i : i + batch_size])
            for l, test in enumerate(tests):
                if test is not None:
                    counts[l] += int(test(pre[l]).sum())
    return [counts[l] / (len(X) * net.sizes[l + 1]) if tests[l] is not None and len(X) else None
            for l in range(net.n_hidden)]
