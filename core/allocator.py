"""Fixed glibc mmap and trim thresholds for the long-running worker, so its resident memory follows what it holds.

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

Fixing the mmap threshold also fixes glibc's heap trim threshold, at 128 KiB, where its adjustment would have put it
at twice the mmap threshold: a free that leaves more than that at the top of the heap gives it back, and the next
array faults it in again. Calibration's arrays of a few hundred KiB were given back and faulted in on every batch:
a window test's calibration took 3.0 s of CPU with the trim at 128 KiB, 1.7 with it at :data:`TRIM_THRESHOLD`
(a scalar CUSUM's 70 and 48 ms; 1.6 s and 42 ms at 32 MiB), so the worker sets both.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""glibc's ``mallopt`` parameter numbers for the heap trim and mmap thresholds (``malloc.h``)."""
MMAP_THRESHOLD = 1 << 20
"""Blocks at least this large get their own mapping: a worker's per-event and per-batch arrays stay on the heap,
large transients go back to the system when freed."""
TRIM_THRESHOLD = 4 << 20
"""Free memory at the top of the heap kept for the next arrays (at most this much stays resident unused)."""


def fix_malloc_thresholds(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Set glibc's mmap and heap trim thresholds, in bytes (turning off their adjustment); False where the C library
    is not glibc (musl, macOS), which is left as it is."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    mallopt = getattr(libc, "mallopt", None)
    return bool(
        mallopt and mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 and mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1
    )
