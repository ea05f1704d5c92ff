"""Keep large freed blocks in the process heap (glibc), so that the next allocation of the same
size does not page-fault its memory in again.

The block solvers allocate many arrays of several MB per step (a (392,000 x 6) output of
LeNet-5's first convolution is 9 MB in float32, its im2col rows 39 MB).  glibc serves blocks
above its mmap threshold (adapted at run time up to 32 MB) with fresh ``mmap`` pages and
returns them to the system on ``free``; every new array then pays a page fault per 4 KB on first
touch, which on a CPU costs more than the arithmetic on it (an element-wise subtraction of two
such arrays: about 10 ms instead of 1.5 ms).  Raising the mmap threshold to 64 MiB (32 MiB
where glibc refuses more) and the trim threshold to 1 GiB makes the heap reuse those blocks:
one LeNet-5 batch of Fenchel took 1.0 s instead of 1.3 s, with the same iterates
(benchmarks/README.md).  The price: freed blocks below the threshold may stay with the process
instead of going back to the system at once (the heap gives back only its free top, beyond
1 GiB), so a process that allocated many large arrays keeps that memory until it exits.

The command line and the benchmark scripts call :func:`reuse_freed_memory` at start; library
users may call it themselves (it changes the whole process's allocator).  It does nothing
where ``LIFTNET_REUSE_MEMORY`` is 0 / false / off / no, where the user tuned glibc's malloc
already (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``), and
elsewhere than Linux with glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["reuse_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLDS = (64 << 20, 32 << 20)  # tried in turn: older glibc refuses above 32 MiB
TRIM_THRESHOLD = 1 << 30  # free heap top above this is given back to the system
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def reuse_freed_memory() -> bool:
    """Raise glibc's mmap threshold (64 MiB, else 32 MiB) and then its trim threshold (1 GiB).

    Returns True when both were changed, False when nothing was (see the module docstring for
    where it does not apply).  The trim threshold is only set after the mmap threshold was
    accepted: setting it alone would freeze glibc's mmap threshold at its 128 KiB start.
    Results do not depend on it."""
    if os.environ.get("LIFTNET_REUSE_MEMORY", "1").strip().lower() in ("0", "false", "off", "no"):
        return False
    if not sys.platform.startswith("linux") or any(v in os.environ for v in _USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not any(mallopt(_M_MMAP_THRESHOLD, size) == 1 for size in MMAP_THRESHOLDS):
        return False
    return mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
