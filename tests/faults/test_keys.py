"""Producers that do not key by segment: traffic published with null keys over four partitions to two workers is
repartitioned by segment inside the stream, so each segment's detector state lives once, on one worker."""

from __future__ import annotations

import json
import pickle
from collections import Counter, defaultdict
from functools import partial

import pytest

from driftloop.kafka import segment_key
from driftloop.repartition import segment_partition
from driftloop.settings import Settings
from tests.faults.counts import Counts, assert_counts, settle
from tests.faults.harness import Rig, traffic
from tests.faults.test_inputs import POISON
from tests.integration.helpers import accepted, events_by_segment, topic_records, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

UNKEYED_POISON = ("nested 100,000 deep", "Infinity as latency")
"""Poison records sent with null keys too: dead-lettered at the first hop, never forwarded."""


TENANTS = {"t0": "tenant-1", "t1": "tenant-10"}
"""Tenant names whose four segments fall in four partitions, so both workers hold segments."""


@pytest.mark.parametrize("kill", [False, True], ids=["both-live", "one-killed-mid-stream"])
def test_null_keys_over_four_partitions_and_two_workers(rig: Rig, kill: bool) -> None:
    """Killed: the busier worker SIGKILLed at half the events, with forwarded events in flight; the other takes its
    partitions over, traffic and segments topics alike, and counts each event once."""
    events, shifted = traffic(8000, shift_at=4000, tenants=2)
    for event in events:
        event["tenant"] = TENANTS[event["tenant"]]
    shifted = {segment.rsplit("/", 1)[0] + "/" + TENANTS[segment.rsplit("/", 1)[1]] for segment in shifted}
    segments = {segment_key(event).decode() for event in events}
    assert {segment_partition(segment, rig.settings.topic_partitions) for segment in segments} == {0, 1, 2, 3}
    workers = rig.start_workers(2)
    poison = [(None, POISON[name]) for name in UNKEYED_POISON]
    half = len(events) // 2
    unkeyed = [(None, json.dumps(event).encode()) for event in events]
    partitions = rig.publish([poison[0], *unkeyed[:half], poison[1], *unkeyed[half:]])
    assert len(partitions) == rig.settings.topic_partitions >= 4, partitions
    wait_for(lambda: all(map(rig.accepted_by, workers)), 120, "both workers to hold segments")
    if kill:
        wait_for(lambda: accepted(rig.settings) >= half, 120, "half of the events")
        rig.kill(max(workers, key=rig.accepted_by))
    counts, expected = settle(
        rig, partial(Counts.expected, rig, dead_lettered=len(poison), shifted=shifted, workers_up=1 if kill else 2)
    )
    assert_counts(counts, expected, rig)
    published = Counter(segment_key(event).decode() for event in events)
    assert events_by_segment(rig.settings) == dict(published), "each segment's state holds all of its events"
    sent = {record.value: record.timestamp for record in topic_records(rig.settings, rig.settings.traffic_topic)}
    hops = topic_records(rig.settings, rig.settings.segments_topic)
    assert hops and all(hop.timestamp == sent[hop.value] for hop in hops), "a forwarded event keeps its time"
    writes = checkpointed_counts(rig.settings)
    assert set(writes) == set(published)
    one_owner = {segment: seen == sorted(seen) for segment, seen in writes.items()}
    assert all(one_owner.values()), f"checkpoints from two owners (event counts going back): {writes}"


def checkpointed_counts(settings: Settings) -> dict[str, list[int]]:
    """Segment → the event count of each of its checkpoints, in the order the changelog holds them (one
    partition per segment). One owner at a time only ever writes a count at least the last one."""
    writes: dict[str, list[int]] = defaultdict(list)
    for record in topic_records(settings, f"{settings.app_id}-segment-monitors-changelog", idle_ms=2000):
        writes[record.key.decode()].append(pickle.loads(record.value).events)
    return dict(writes)
