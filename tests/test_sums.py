"""liftnet.sums.sum64 (float64 sums by chunks of rows) and liftnet.allocator."""

from __future__ import annotations

import os
import platform
import subprocess
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
    assert sum64(square, U2) - sum64(square, U) == pytest.approx(2.0**-19, rel=1e-3)


def test_sum64_keeps_rows_together_and_refuses_other_lengths(monkeypatch):
    monkeypatch.setattr(sums, "CHUNK_ELEMENTS", 10)
    A = torch.arange(12.0).reshape(4, 3)
    # a row-wise function (each row's max) sees whole rows in every chunk
    assert sum64(lambda a: a.max(1).values, A) == float(A.max(1).values.sum())
    with pytest.raises(ValueError, match="different numbers of rows"):
        sum64(lambda a, b: a * b, A, torch.ones(5, 3))
    assert sum64(lambda a: a, torch.zeros(0, 3)) == 0.0


def test_sum64_scalars_are_summed_whole_and_chunks_follow_the_widest_row(monkeypatch):
    monkeypatch.setattr(sums, "CHUNK_ELEMENTS", 8)
    assert sum64(lambda a: a * 2, torch.tensor(1.5)) == 3.0
    seen = []

    def rows(a, b):
        seen.append(b.shape[0])
        return a.sum(1) + b.sum(1)

    A, B = torch.ones(10, 1), torch.ones(10, 4)
    assert sum64(rows, A, B) == 50.0
    assert max(seen) == 2  # 8 elements over rows of 4, not of 1


_FAULTS = """
import resource, sys, torch
from liftnet.allocator import reuse_freed_memory
changed = reuse_freed_memory()
faults = []
for _ in range(8):  # a 40 MB array, freed and allocated again
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(10 << 20)
    del x
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(int(changed), *faults)
"""


def _faults(env_value: str) -> tuple[int, list[int]]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")}
    env["LIFTNET_REUSE_MEMORY"] = env_value
    out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return int(out[0]), [int(v) for v in out[1:]]


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"),
                    reason="reuse_freed_memory changes glibc's allocator only")
def test_reuse_freed_memory_stops_page_faults_of_reallocated_blocks():
    """In a fresh process: every allocation of a 40 MB array faults its 10,240 pages in with
    glibc's defaults (above its mmap threshold); after the call the heap keeps the block, and
    once it has settled (the first allocations may still grow it) most reallocations fault
    hardly at all."""
    changed, faults = _faults("1")
    off, faults_off = _faults("off")
    assert (changed, off) == (1, 0)
    assert min(faults_off) > 5000
    assert sorted(faults[2:])[len(faults[2:]) // 2] < 500  # the median after two allocations


def test_reuse_freed_memory_leaves_user_settings_alone(monkeypatch):
    for value in ("0", "false", "OFF", "no"):
        monkeypatch.setenv("LIFTNET_REUSE_MEMORY", value)
        assert reuse_freed_memory() is False
    monkeypatch.setenv("LIFTNET_REUSE_MEMORY", "1")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert reuse_freed_memory() is False


def test_the_program_tunes_the_allocator_and_a_python_call_does_not(monkeypatch):
    import liftnet.cli as cli

    calls = []
    monkeypatch.setattr(cli, "reuse_freed_memory", lambda: calls.append(1))
    with pytest.raises(SystemExit):
        cli.main(["no-such-command"])
    assert calls == []
    monkeypatch.setattr(sys, "argv", ["liftnet", "no-such-command"])
    with pytest.raises(SystemExit):
        cli.main()
    assert calls == [1]
