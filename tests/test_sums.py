"""liftnet.sums.sum64 (float64 sums by chunks of rows) and liftnet.allocator."""

from __future__ import annotations

import platform
import sys

import pytest
import torch

import liftnet.sums as sums
from liftnet.activations import get_activation
from liftnet.allocator import reuse_freed_memory
from liftnet.sums import sum64


def _gap(u, v):
    relu = get_activation("relu")
    return relu.potential(v) + relu.conjugate(u) - u * v


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 16])
def test_sum64_by_chunks_equals_the_whole_float64_sum(monkeypatch, chunk):
    monkeypatch.setattr(sums, "CHUNK_ELEMENTS", chunk)
    g = torch.Generator().manual_seed(0)
    U = torch.randn(103, 6, generator=g)
    V = torch.rand(103, 6, generator=g)
    want = float(_gap(U.double(), V.double()).sum())
    assert sum64(_gap, U, V) == pytest.approx(want, rel=1e-13, abs=0)


def test_sum64_sees_changes_below_float32_resolution(monkeypatch):
    """The reason it exists: a float32 sum cannot tell these two apart, sum64 can."""
    monkeypatch.setattr(sums, "CHUNK_ELEMENTS", 1000)
    U = torch.full((200_000, 1), 1.0)
    U2 = U.clone()
    U2[0, 0] = 1.0 + 2.0**-20  # changes the sum of squares by about 2e-6 of 1e5
    square = lambda u: u * u  # noqa: E731
    assert float((U2 * U2).sum()) == float((U * U).sum())  # float32 misses it
    assert sum64(square, U2, ) - sum64(square, U) == pytest.approx(2.0**-19, rel=1e-3)


def test_sum64_keeps_rows_together_and_refuses_other_lengths(monkeypatch):
    monkeypatch.setattr(sums, "CHUNK_ELEMENTS", 10)
    A = torch.arange(12.0).reshape(4, 3)
    # a row-wise function (each row's max) sees whole rows in every chunk
    assert sum64(lambda a: a.max(1).values, A) == float(A.max(1).values.sum())
    with pytest.raises(ValueError, match="different numbers of rows"):
        sum64(lambda a, b: a * b, A, torch.ones(5, 3))
    assert sum64(lambda a: a, torch.zeros(0, 3)) == 0.0


def test_reuse_freed_memory_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("LIFTNET_REUSE_MEMORY", "0")
    assert reuse_freed_memory() is False
    monkeypatch.setenv("LIFTNET_REUSE_MEMORY", "1")
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert reuse_freed_memory() is glibc
