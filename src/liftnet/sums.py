"""Float64 sums of element-wise expressions of large tensors, computed by chunks of rows.

The block solvers keep a step only if it does not increase the objective, and that test has to
see improvements far below float32 resolution (a W-step of LeNet-5's first convolution changes
its objective by about 1e-8 of its size), so the values are summed in float64.  Converting a
(392,000 x 6) array to float64 and evaluating an expression on it whole allocates several
arrays of 19 MB per value; on a CPU their first-touch page faults cost more than the
arithmetic.  Chunks of about 64 K elements keep the temporaries in cache and give the same sum
to float64 rounding.  On a GPU the expression is evaluated whole (its allocator caches blocks,
and every chunk would be a kernel launch).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["sum64"]

CHUNK_ELEMENTS = 1 << 16


def sum64(fn: Callable[..., Tensor], *tensors: Tensor) -> float:
    """``float(fn(*(t.double() for t in tensors)).sum())``, evaluated by chunks of rows.

    ``fn`` must be element-wise along the rows (any row of its result depends only on the same
    rows of its arguments), and the tensors must have the same number of rows; scalars (0-dim
    tensors) and tensors on a GPU are evaluated whole."""
    if not tensors or any(t.dim() == 0 for t in tensors):
        return float(fn(*(t.double() for t in tensors)).sum())
    n = tensors[0].shape[0]
    if any(t.shape[0] != n for t in tensors):
        raise ValueError(f"sum64: tensors with different numbers of rows, "
                         f"{[tuple(t.shape) for t in tensors]}")
    row = max(1, *(t[:1].numel() for t in tensors))  # the widest row sets the chunk
    step = max(1, CHUNK_ELEMENTS // row)
    if tensors[0].device.type != "cpu" or step >= n:
        return float(fn(*(t.double() for t in tensors)).sum())
    total = torch.zeros((), dtype=torch.float64)
    for i in range(0, n, step):
        total += fn(*(t[i : i + step].double() for t in tensors)).sum()
    return float(total)
