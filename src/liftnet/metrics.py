"""Targets and scores shared by every method."""

from __future__ import annotations

import torch
from torch import Tensor

from .graph import Network, Params


def is_classification(y: Tensor) -> bool:
    """Integer labels mean classification; float targets mean regression."""
    return not torch.is_floating_point(y)


def targets_for(net: Network, y: Tensor, dtype: torch.dtype) -> Tensor:
    """The target matrix Y (N, d_out): one-hot rows for labels, the targets themselves otherwise."""
    k = net.sizes[-1]
    if is_classification(y):
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= k):
            raise ValueError(
                f"labels must lie in [0, {k - 1}], got range [{int(y.min())}, {int(y.max())}]"
            )
        Y = torch.zeros((len(y), k), dtype=dtype, device=y.device)
        Y[torch.arange(len(y), device=y.device), y.long()] = 1.0
        return Y
    if net.loss == "ce":
        raise ValueError("cross-entropy needs integer class labels, got float targets")
    Y = y.to(dtype)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.shape[1] != k:
        raise ValueError(f"targets have {Y.shape[1]} columns but the network outputs {k}")
    return Y


def accuracy(net: Network, params: Params, X: Tensor, y: Tensor) -> float | None:
    """Share of correctly classified rows with the feed-forward rule (None for regression)."""
    if not is_classification(y):
        return None
    with torch.no_grad():
        out = torch.cat(
            [net.forward(params, X[i : i + 8192]) for i in range(0, len(X), 8192)]
        ) if len(X) else X.new_zeros((0, net.sizes[-1]))
    return float((out.argmax(dim=1) == y).double().mean()) if len(y) else float("nan")


def mean_squared_error(net: Network, params: Params, X: Tensor, Y: Tensor) -> float:
    """Mean over samples of ||f(x) - y||^2."""
    with torch.no_grad():
        out = net.forward(params, X)
    return float(((out - Y.reshape(out.shape)) ** 2).sum(dim=1).mean())
