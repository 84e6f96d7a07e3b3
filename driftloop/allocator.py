"""A fixed glibc mmap threshold for the long-running worker, so its resident memory follows what it holds.

glibc serves blocks above its mmap threshold with their own mappings, returned to the system when freed. It starts
at 128 KiB, but each time a mapped block is freed it raises the threshold to that block's size (up to 32 MiB) and
its heap trim threshold to twice that. A worker's large transient arrays (a calibration's simulated streams, a
report's frames) thus move later blocks of their size onto the heap, where up to twice the largest of them stays
resident after it is freed: the worker's RSS ratchets up by tens of MB and varies from run to run by as much, which
hides a real leak on a dashboard. Setting the threshold turns that adjustment off.

Measured with ``tests/faults/test_inputs.py::test_many_tenants_in_bounded_memory`` (RSS growth over 75,000 new
tenants, 2-core machine): 21, 50, 60, 48, 23 and 54 MB without (the test allows 40); 23, 19, 22, 15, 17, 16 and 14
MB with the worker setting it to 1 MiB. ``malloc_trim(0)`` every second instead left 15–41 MB (6 runs): the freed
blocks sit between live ones. A block above the threshold is mapped and faulted in afresh each time, so hot loops
keep theirs under it (:data:`monitor.calibration.BATCH_VALUES`: with 16 paths a batch the threshold doubled
calibration's CPU).
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number for the mmap threshold (``malloc.h``)."""
MMAP_THRESHOLD = 1 << 20
"""Blocks at least this large get their own mapping: a worker's per-event and per-batch arrays stay on the heap,
large transients go back to the system when freed."""


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Set glibc's mmap threshold to ``threshold`` bytes (turning off its adjustment); False where the C library is
    not glibc (musl, macOS), which is left as it is."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    mallopt = getattr(libc, "mallopt", None)
    return bool(mallopt and mallopt(M_MMAP_THRESHOLD, threshold) == 1)
