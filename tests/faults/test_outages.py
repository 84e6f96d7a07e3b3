"""The broker or Redis goes away and comes back: the worker waits, resumes by itself and counts every event;
with both gone, SIGTERM still stops it."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.faults.counts import Counts, differences, settle
from tests.faults.harness import Rig, keyed, traffic
from tests.integration.helpers import accepted, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_redis_stopped_and_restarted_under_traffic(rig: Rig) -> None:
    events, shifted = traffic(6000, shift_at=3000)
    rig.start_workers()
    rig.publish(keyed(events[:2000]))
    wait_for(lambda: accepted(rig.settings) >= 2000, 120, "the events sent before the outage")
    with rig.redis.down(rig.faults.redis_outage_s):
        rig.publish(keyed(events[2000:4000]))
    rig.publish(keyed(events[4000:]))
    expected = Counts.expected(rig, dead_lettered=0, shifted=shifted, workers_up=1)
    counts = settle(rig, expected)
    assert counts == expected, differences(counts, expected)


def test_sigterm_with_broker_and_redis_gone(rig: Rig) -> None:
    events, _ = traffic(500)
    [worker] = rig.start_workers()
    rig.publish(keyed(events))
    wait_for(lambda: accepted(rig.settings) >= len(events), 120, "the events")
    rig.broker.stop()
    rig.redis.stop()
    time.sleep(5)  # the worker notices: it is retrying when the signal comes
    sent = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=rig.faults.sigterm_exit_s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker was still running {time.monotonic() - sent:.1f} s after SIGTERM")
