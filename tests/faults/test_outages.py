"""The broker or Redis goes away and comes back: the worker waits, resumes by itself and counts every event;
with both gone, SIGTERM still stops it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from functools import partial
from pathlib import Path

import pytest

from driftloop.kafka import Replayed, replay
from tests.faults.counts import Counts, assert_counts, settle
from tests.faults.harness import Rig, keyed, traffic
from tests.integration.helpers import accepted, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]
DELAY = "FAULT_LOOKUP_DELAY_S"
"""Seconds each look-up of the traffic log starts late in a worker started with ``slow_lookup`` on its path."""


def test_redis_stopped_and_restarted_under_traffic(rig: Rig) -> None:
    events, shifted = traffic(6000, shift_at=3000)
    rig.start_workers()
    rig.publish(keyed(events[:2000]))
    wait_for(lambda: accepted(rig.settings) >= 2000, 120, "the events sent before the outage")
    with rig.redis.down(rig.faults.redis_outage_s):
        rig.publish(keyed(events[2000:4000]))
    rig.publish(keyed(events[4000:]))
    counts, expected = settle(rig, partial(Counts.expected, rig, dead_lettered=0, shifted=shifted, workers_up=1))
    assert_counts(counts, expected, rig)


def test_broker_stopped_and_restarted_under_traffic(rig: Rig) -> None:
    """The embedded broker keeps everything in memory: it comes back empty (no topics, group or offsets). The
    worker recreates the topics, rejoins and resets its positions (counted); ``replay``, started during the
    outage, retries its sends until the broker is back. It sends more than the old log held, so the new log's
    offsets pass the old positions before the worker reads them: only the log's new id tells them apart. The
    worker's look-ups of the log start 5 s late (as when recreating the topics is slow): the tables' recovery
    resumes the stream before the rebalance's look-up is done, so a record admitted under the old log's id was
    dropped as a redelivery (2,000 of 6,000 lost this way before each assignment's first batch waited for its
    look-up; 256 or 768 in 2 of 8 runs without the delay)."""
    events, shifted = traffic(6000, shift_at=3000)
    slow = Path(__file__).parent / "slow_lookup"
    path = os.pathsep.join(filter(None, [str(slow), os.environ.get("PYTHONPATH")]))
    rig.start_workers(env={"PYTHONPATH": path, DELAY: "5"})
    assert f"{DELAY}=5" in (rig.workdir / "worker-0.log").read_text(), "the worker runs without the slow look-ups"
    rig.publish(keyed(events[:2000]))
    wait_for(lambda: accepted(rig.settings) >= 2000, 120, "the events sent before the outage")
    replayed: list[Replayed] = []
    lines = [json.dumps(event) for event in events[2000:5000]]
    sender = threading.Thread(target=lambda: replayed.append(replay(lines, rig.settings)))
    with rig.broker.down(rig.faults.broker_outage_s):
        sender.start()
    sender.join()
    [result] = replayed
    assert result.failed == 0, f"{result.failed} of {len(lines)} sends failed across the outage: {result.errors}"
    rig.published += result.sent
    rig.publish(keyed(events[5000:]))
    counts, expected = settle(rig, partial(Counts.expected, rig, dead_lettered=0, shifted=shifted, workers_up=1))
    assert_counts(counts, expected, rig)
    assert rig.stream_resets() > 0


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
