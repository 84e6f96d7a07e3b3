"""Detector calibrations run on every core: a reference's detectors are calibrated in worker processes at once.

Calibrating a reference's detectors takes seconds of CPU (bootstrap simulations, :mod:`monitor.calibration`) and
holds the stream while it runs. NumPy's accumulations in them do not release the GIL: two threads calibrate no
faster than one (8 scalar calibrations: 55-64 ms each serially, 55-63 in two threads), two processes twice as fast.
So a segment's calibrations go to a pool of :data:`PROCESSES` spawned processes and come back as detectors. Each
process runs only the picklable :data:`Fit` it is sent, which imports the detectors' modules and nothing else of
the worker (about 100 MB a process, against 600 MB for the whole ``monitor``). A calibration's result depends only
on its inputs and seed, so a detector is the same whichever process calibrated it.

Where a process may not start processes (a daemonic one, as in a ``multiprocessing.Pool``) the fits run in it; a
pool whose process died (killed, out of memory) is replaced and the batch's fits run again; a pool process exits
as its parent does, however it ended; a worker stops its pool as it stops. The processes' CPU
time counts as the ``calibration`` stage of :data:`monitor.cpu.CLOCK`.

>>> from functools import partial
>>> from monitor.detectors import calibrated
>>> reference = np.random.default_rng(0).normal(size=400)
>>> detectors = fitted({"x": partial(calibrated, "x", reference, ert=1e6, warning_ert=1e3)})
>>> detectors["x"].threshold > detectors["x"].warning > 0
True
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits

from core.allocator import fix_malloc_thresholds
from monitor.cpu import CLOCK

if TYPE_CHECKING:
    from monitor.detector import Detector

Fit = Callable[[], "Detector"]
"""A detector's calibration as a picklable call (a ``functools.partial`` of a module-level function)."""
PROCESSES = 2
"""Calibrations at once (the machine's cores: 2 here)."""


def fitted(fits: dict[str, Fit]) -> dict[str, Detector]:
    """Name → the detector its fit calibrates; the fits run in the pool's processes at once, in their order (put
    the longest first)."""
    if multiprocessing.current_process().daemon:
        return {name: CLOCK.timed("calibration", fit) for name, fit in fits.items()}
    try:
        return _in_pool(fits)
    except BrokenProcessPool:
        _pool.cache_clear()  # its processes are gone: a new pool, and the fits again
        return _in_pool(fits)


def stop() -> None:
    """Stop the pool's processes, after the calibrations they run (a worker's shutdown); the next calibration
    starts a new pool."""
    if _pool.cache_info().currsize:
        _pool().shutdown(cancel_futures=True)
        _pool.cache_clear()


def start() -> None:
    """Start the pool's processes now (a worker's warm-up), not at the first reference."""
    if not multiprocessing.current_process().daemon:
        for future in [_pool().submit(np.zeros, 1) for _ in range(PROCESSES)]:
            future.result()


def _in_pool(fits: dict[str, Fit]) -> dict[str, Detector]:
    """The fits run in the pool, their CPU counted as calibration."""
    futures = {name: _pool().submit(_timed, fit) for name, fit in fits.items()}
    detectors = {}
    for name, future in futures.items():
        detectors[name], seconds = future.result()
        CLOCK.add("calibration", seconds)
    return detectors


def _timed(fit: Fit) -> tuple[Detector, float]:
    """``fit()`` and the CPU seconds it took (run in a pool process)."""
    started = time.process_time()
    detector = fit()
    return detector, time.process_time() - started


def serve() -> None:
    """Set up a pool process: the worker's malloc thresholds (:mod:`core.allocator`) and BLAS on one thread (the
    pool's processes are the cores' share), and an exit as soon as its parent is gone (killed, it could not say so:
    its pool's processes would wait for work forever)."""
    fix_malloc_thresholds()
    threadpool_limits(limits=1, user_api="blas")
    threading.Thread(target=_exit_with_parent, daemon=True).start()


def _exit_with_parent() -> None:
    parent = multiprocessing.parent_process()
    assert parent is not None, "a pool process has a parent"
    parent.join()  # its sentinel: readable when the parent process is gone, however it ended
    os._exit(0)


@cache
def _pool() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(PROCESSES, multiprocessing.get_context("spawn"), initializer=serve)
