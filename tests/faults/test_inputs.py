"""What producers send: poison records dead-lettered and the stream going on; many tenants in bounded memory."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from driftloop.kafka import segment_key
from tests.faults.counts import Counts, assert_counts, settle
from tests.faults.harness import Rig, keyed, traffic
from tests.integration.helpers import accepted, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

EVENT = b'{"schema": "driftloop.traffic/v1", "id": "%s", "model": "m", "prompt": %s}'
POISON = {
    "invalid UTF-8": EVENT % (b"utf8", b'"caf\xe9 \xff\xfe"'),
    "a lone surrogate": EVENT % (b"surrogate", b'"\\ud800"'),
    "huge (2 MiB prompt)": EVENT % (b"huge", json.dumps("x" * (2 << 20)).encode()),
    "Infinity as latency": EVENT[:-1] % (b"inf", b'"hi"') + b', "latency_ms": Infinity}',
    "raw control characters": EVENT % (b"control", b'"\x00\x07\x1b[2J"'),
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
}
"""Records that are not events, each dead-lettered (the one that killed the agent last, so the others show)."""
VALID_AFTER = 200


def test_poison_records_each_followed_by_valid_events(rig: Rig) -> None:
    rig.start_workers()
    events, _ = traffic(VALID_AFTER * len(POISON))
    for index, poison in enumerate(POISON.values()):
        after = events[index * VALID_AFTER : (index + 1) * VALID_AFTER]
        rig.publish([(segment_key(after[0]), poison), *keyed(after)])  # in the partition of the events after it
    counts, expected = settle(
        rig, partial(Counts.expected, rig, dead_lettered=len(POISON), shifted=set(), workers_up=1)
    )
    assert_counts(counts, expected, rig)


def test_many_tenants_in_bounded_memory(rig: Rig) -> None:
    tenants = rig.faults.tenants
    events, _ = traffic(tenants)
    for index, event in enumerate(events):
        event["tenant"] = f"tenant-{index:06d}"
    [worker] = rig.start_workers()
    rig.publish(keyed(events[: tenants // 4]))
    wait_for(lambda: accepted(rig.settings) >= tenants // 4, 120, "the first quarter of the tenants")
    before = resident_mb(worker.pid)
    rig.publish(keyed(events[tenants // 4 :]))
    counts, expected = settle(rig, partial(Counts.expected, rig, dead_lettered=0, shifted=set(), workers_up=1))
    growth = resident_mb(worker.pid) - before
    assert_counts(counts, expected, rig)
    assert growth <= rig.faults.rss_growth_mb, (
        f"the worker's RSS grew {growth:.0f} MB over {tenants - tenants // 4} new tenants "
        f"(at most {rig.faults.rss_growth_mb:.0f} MB allowed)"
    )


def resident_mb(pid: int) -> float:
    """VmRSS of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no VmRSS for process {pid}")
