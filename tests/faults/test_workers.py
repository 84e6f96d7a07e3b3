"""Workers that die or share the stream: every event counted once, in the detectors too, and one of each effect
per shifted segment."""

from __future__ import annotations

from functools import partial

import pytest

from tests.faults.counts import Counts, assert_counts, settle
from tests.faults.harness import Rig, keyed, traffic
from tests.integration.helpers import accepted, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_a_worker_killed_twice_mid_stream(rig: Rig) -> None:
    events, shifted = traffic(6000, shift_at=3000)
    rig.publish(keyed(events))
    for share in (1 / 3, 2 / 3):
        [worker] = rig.start_workers()
        wait_for(lambda: accepted(rig.settings) >= share * len(events), 120, f"{share:.0%} of the events")  # noqa: B023
        rig.kill(worker)
    rig.start_workers()
    counts, expected = settle(rig, partial(Counts.expected, rig, dead_lettered=0, shifted=shifted, workers_up=1))
    assert_counts(counts, expected, rig)


def test_two_workers_one_killed_mid_stream(rig: Rig) -> None:
    events, shifted = traffic(8000, shift_at=4000, tenants=2)
    workers = rig.start_workers(2)
    rig.publish(keyed(events))
    wait_for(lambda: accepted(rig.settings) >= len(events) / 2, 120, "half of the events")
    rig.kill(max(workers, key=rig.accepted_by))  # the one mid-stream, if one has all the traffic
    counts, expected = settle(rig, partial(Counts.expected, rig, dead_lettered=0, shifted=shifted, workers_up=1))
    assert_counts(counts, expected, rig)
