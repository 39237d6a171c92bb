"""How this process uses the machine's memory: keep freed CPU memory instead of handing it back
to the OS, and take no more than the machine has.

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
import re
import sys
from contextlib import contextmanager
from pathlib import Path

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


@contextmanager
def within_available_memory():
    """Caps this process's address space, for the block, at what it holds now plus the memory the
    machine has available (and free swap). A batch too big for the machine then fails at an
    allocation, which the run reports in one line with its checkpoint kept. Without the cap the
    allocations succeed (the kernel promises more memory than it has) and the process fills
    memory until the kernel kills it without a word: `dataset=mnist train.batch_size=5000
    model.width=1024` on a 25 GB machine, after 4.5 minutes. The memory available is the least of
    the machine's and its cgroup's (a container's limit: `docker run --memory`, a Kubernetes pod's),
    whose kernel killed a run as silently. Linux only; a lower limit already set stays."""
    cap = _address_space_cap() if sys.platform.startswith("linux") else None
    if cap is None:
        yield
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY and soft <= cap:
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _address_space_cap() -> int | None:
    """What this process holds now plus the memory it could still get; None where /proc does not say."""
    held = _number("/proc/self/status", "VmSize")
    room = _number("/proc/meminfo", "MemAvailable") + _number("/proc/meminfo", "SwapFree")
    if room and (limited := _cgroup_room()) is not None:
        room = max(1, min(room, limited))
    return held + room if held and room else None


# Where each cgroup version keeps a group's memory limit, its use, and the file cache counted in that
# use that the kernel drops before it kills (what `docker stats` leaves out of a container's use too)
CGROUP_FILES = {"v1": ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
                "v2": ("memory.max", "memory.current", "inactive_file")}
NO_LIMIT = 2**60  # cgroup v1 writes "no limit" as the largest page-aligned number, about 2**63


def _cgroup_room() -> int | None:
    """The memory this process's cgroup, and each cgroup above it, still lets it take (limit less
    use); None where none has a limit. A container sees its own group as the root of its mount."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    rooms = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            mount, version = Path("/sys/fs/cgroup/memory"), "v1"
        elif controllers == "":  # the unified hierarchy (its controllers are not listed here)
            mount, version = Path("/sys/fs/cgroup"), "v2"
        else:
            continue
        group = mount / path.lstrip("/")
        group = group if group.is_dir() else mount
        while True:
            room = _room_in(group, *CGROUP_FILES[version])
            if room is not None:
                rooms.append(room)
            if group == mount or not group.is_relative_to(mount):
                break
            group = group.parent
    return min(rooms, default=None)


def _room_in(group: Path, limit_file: str, usage_file: str, cache_key: str) -> int | None:
    try:
        limit = (group / limit_file).read_text().strip()
        if not limit.isdigit() or int(limit) >= NO_LIMIT:  # ("max": none, cgroup v2)
            return None
        used = int((group / usage_file).read_text())
        cache = re.search(rf"^{cache_key} (\d+)$", (group / "memory.stat").read_text(), re.MULTILINE)
    except (OSError, ValueError):
        return None
    return int(limit) - used + (int(cache[1]) if cache else 0)


def _number(path: str, field: str) -> int:
    """A 'Field: N kB' line of a /proc file, in bytes (0 where there is none)."""
    try:
        found = re.search(rf"^{field}:\s+(\d+) kB", Path(path).read_text(), re.MULTILINE)
    except OSError:
        return 0
    return int(found[1]) * 1024 if found else 0
