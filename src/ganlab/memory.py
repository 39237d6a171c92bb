"""Keep freed CPU memory in the process instead of handing it back to the OS.

glibc's malloc serves every block over 32 MB (and, by default, many smaller ones) with a fresh
mmap and unmaps it on free. A training step re-allocates the same activation and gradient
tensors every iteration, so each of them is page-faulted in again, every time: on this 2-core
machine a ReLU over 51 MB took 27-30 ms that way and 5-7 ms with the memory kept
(experiments/benchmark.py, experiments/README.md#speed). PyTorch's CPU tuning guide suggests
jemalloc or tcmalloc for this; glibc's own mallopt does it without a preloaded library.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
GLIBC_DEFAULTS = {M_TRIM_THRESHOLD: 128 * 1024, M_MMAP_MAX: 65536}


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") else None
    except OSError:  # not glibc (macOS, Windows, musl without mallopt): nothing to tune
        return None


def keep_freed_memory(keep: bool = True) -> bool:
    """Serve large blocks from the heap and never trim it (keep=False: glibc's defaults again).
    Returns whether the allocator could be told."""
    libc = _libc()
    if libc is None:
        return False
    settings = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 2**31 - 1} if keep else GLIBC_DEFAULTS
    return all(libc.mallopt(param, value) == 1 for param, value in settings.items())
