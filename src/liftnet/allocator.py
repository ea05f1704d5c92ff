"""Keep large freed blocks in the process heap (glibc), so that the next allocation of the same
size does not page-fault its memory in again.

The block solvers allocate many arrays of several MB per step (a (392,000 x 6) output of
LeNet-5's first convolution is 9 MB in float32, its im2col rows 39 MB).  glibc serves blocks
above its mmap threshold (at most 32 MB, adapted at run time) with fresh ``mmap`` pages and
returns them to the system on ``free``; every new array then pays a page fault per 4 KB on first
touch, which on a CPU costs more than the arithmetic on it (an element-wise subtraction of two
such arrays: about 10 ms instead of 1.5 ms).  Raising the mmap and trim thresholds makes the
heap reuse those blocks: one LeNet-5 batch of Fenchel took 1.0 s instead of 1.3 s, with the
same iterates (benchmarks/README.md).  The price is that the process keeps up to
``trim_threshold`` bytes of freed memory instead of giving them back at once.

The command line and the benchmark scripts call :func:`reuse_freed_memory` at start; library
users may call it themselves (it changes the whole process's allocator).  Set
``LIFTNET_REUSE_MEMORY=0`` to leave the allocator alone.  Elsewhere than Linux with glibc it
does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["reuse_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 256 << 20  # blocks above this still come from mmap (full-batch arrays)
TRIM_THRESHOLD = 1 << 30  # free heap above this is given back to the system


def reuse_freed_memory() -> bool:
    """Raise glibc's mmap threshold to 256 MiB and its trim threshold to 1 GiB.

    Returns True when the allocator was changed, False where it does not apply (not Linux,
    not glibc, or ``LIFTNET_REUSE_MEMORY=0``).  Results do not depend on it."""
    if os.environ.get("LIFTNET_REUSE_MEMORY", "1").strip() == "0":
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
