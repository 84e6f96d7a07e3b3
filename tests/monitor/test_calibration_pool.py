"""The calibration pool: detectors calibrated in its processes are those calibrated in this one, its processes' CPU
counts as calibration, a pool whose process died is replaced, its processes exit with their parent or when
stopped, and a daemonic process calibrates in itself."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

from monitor import calibration_pool
from monitor.cpu import CLOCK
from monitor.detectors import calibrated
from monitor.windows import FourierMap, calibrated_window

RNG = np.random.default_rng(7)
SCALAR = RNG.lognormal(6, 0.4, size=800).astype(np.float32)
VECTORS = RNG.normal(size=(400, 16)).astype(np.float32)
REFUSALS = (RNG.random(800) < 0.05).astype(np.float32)


def fits() -> dict[str, calibration_pool.Fit]:
    return {
        "embedding": partial(calibrated_window, "embedding", FourierMap.fit(VECTORS), VECTORS, 100, 1e6, 1e3, 3),
        "latency_ms": partial(calibrated, "latency_ms", SCALAR, 1e7, 1e4, 1),
        "refusal": partial(calibrated, "refusal", REFUSALS, 1e7, 1e4, 2),
    }


def levels(detectors: dict) -> dict[str, tuple[float, float]]:
    return {name: (detector.warning, detector.threshold) for name, detector in detectors.items()}


def test_the_pool_calibrates_what_this_process_would_and_counts_its_cpu() -> None:
    before = CLOCK.totals().get("calibration", 0.0)
    pooled = calibration_pool.fitted(fits())
    spent = CLOCK.totals()["calibration"] - before
    here = {name: fit() for name, fit in fits().items()}
    assert levels(pooled) == levels(here)
    assert {type(detector) for detector in pooled.values()} == {type(detector) for detector in here.values()}
    assert spent > 0.05  # a window test's simulation: tenths of a second, none of it in this process


def test_a_pool_whose_process_died_is_replaced() -> None:
    calibration_pool.start()
    pool = calibration_pool._pool()
    victim = next(iter(pool._processes.values()))
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(10)
    detectors = calibration_pool.fitted(fits())
    assert levels(detectors) == levels({name: fit() for name, fit in fits().items()})
    assert calibration_pool._pool() is not pool


def calibrate_in_a_daemon() -> tuple[bool, dict[str, tuple[float, float]]]:
    return multiprocessing.current_process().daemon, levels(calibration_pool.fitted(fits()))


def test_a_daemonic_process_calibrates_in_itself() -> None:
    with multiprocessing.get_context("spawn").Pool(1) as daemons:  # may not start processes of its own
        daemonic, found = daemons.apply(calibrate_in_a_daemon)
    assert daemonic
    assert found == levels({name: fit() for name, fit in fits().items()})


def test_the_pool_processes_exit_when_their_parent_is_killed() -> None:
    started = "from monitor import calibration_pool; calibration_pool.start(); "
    listed = "print(*[p.pid for p in calibration_pool._pool()._processes.values()], flush=True); "
    parent = subprocess.Popen(
        [sys.executable, "-c", "import time; " + started + listed + "time.sleep(60)"], stdout=subprocess.PIPE
    )
    assert parent.stdout is not None
    pids = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(pids) == calibration_pool.PROCESSES and all(alive(pid) for pid in pids)
    parent.kill()  # SIGKILL: it cannot stop its pool
    parent.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids)


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_stopped_pool_leaves_no_process_and_the_next_calibration_starts_another() -> None:
    calibration_pool.start()
    processes = list(calibration_pool._pool()._processes.values())
    calibration_pool.stop()
    assert processes and not any(alive(process.pid) for process in processes)
    assert levels(calibration_pool.fitted(fits())) == levels({name: fit() for name, fit in fits().items()})
