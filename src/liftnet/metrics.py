"""Targets and scores shared by every method."""

from __future__ import annotations

import torch
from torch import Tensor

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
    if len(y) == 0:
        return None
    pred = net.outputs(params, X).argmax(dim=1)
    return float((pred == y).double().mean())
