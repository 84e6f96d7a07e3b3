"""The worker's fixed malloc thresholds: a freed large array leaves its resident memory, a small one stays."""

import subprocess
import sys

import pytest

from core.allocator import TRIM_THRESHOLD

PROBE = """
import sys
import numpy as np
from core.allocator import fix_malloc_thresholds

def resident_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

if sys.argv[1] == "fixed":
    assert fix_malloc_thresholds()
before = resident_mb()
transient = np.ones(2 << 20)  # 16 MiB, mapped: freeing it raises glibc's threshold to its size
del transient
later = np.ones(1 << 20)  # 8 MiB, on the heap under the raised threshold
del later
print(resident_mb() - before)
"""


def kept_mb(mode: str) -> float:
    """MB still resident in a fresh process after a 16 MiB and then an 8 MiB array were allocated and freed."""
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return float(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator, read through /proc")
def test_a_fixed_threshold_returns_freed_arrays_that_glibc_would_keep() -> None:
    assert kept_mb("adjusting") >= 7.0  # glibc's own behaviour, the reason for the fix: the 8 MiB stays
    assert kept_mb("fixed") < 1.0


FAULTS = """
import resource
import numpy as np
from core.allocator import fix_malloc_thresholds

assert fix_malloc_thresholds(trim_threshold=int(__import__("sys").argv[1]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    np.ones(100_000)  # 800 KB, under the mmap threshold: from the heap, freed at its top
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator, page faults from getrusage")
def test_an_array_under_the_mmap_threshold_reuses_the_heap_instead_of_faulting_it_in_again() -> None:
    """100 arrays of 800 KB one after the other: with the trim threshold at glibc's 128 KiB each is given back when
    freed and faulted in again (about 200 pages each); with the worker's, the first one's pages serve them all."""

    def faults(trim_threshold: int) -> int:
        done = subprocess.run(
            [sys.executable, "-c", FAULTS, str(trim_threshold)], capture_output=True, text=True, check=True
        )
        return int(done.stdout)

    assert faults(128 * 1024) > 100 * 150
    assert faults(TRIM_THRESHOLD) < 1_000
