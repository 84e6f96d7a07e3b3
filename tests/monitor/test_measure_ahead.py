"""Measuring ahead: what the helper process measures is what the stream step measures itself, records it did not
measure (too few yet, never fetched, a helper that died) are left to the step, and its CPU counts as its stages."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from concurrent.futures import wait

import numpy as np
import pytest

from devtools.traffic import shifted_stream
from monitor.agent import measure
from monitor.cpu import CLOCK
from monitor.events import parse_event
from monitor.measure_ahead import CHUNK, IN_FLIGHT, MeasureAhead, Recipe
from monitor.prices import PriceTable
from monitor.stream import StreamStep
from tests.factories import stream_settings

SAMPLE_RATE = 0.5
RECORDS = [json.dumps(event).encode() for event in shifted_stream(2 * CHUNK, None, seed=3)]


@pytest.fixture
def ahead() -> MeasureAhead:
    helper = MeasureAhead(Recipe(PriceTable.of(), None, "static", SAMPLE_RATE))
    helper.start()
    yield helper
    helper.stop()


def measured(helper: MeasureAhead, records: list[bytes]) -> None:
    """Hand ``records`` to the helper as the consumer would, and wait until it has measured them."""
    for record in records:
        helper.fetched(record)
    assert wait({future for future, _ in helper.measured.values()}, timeout=120).not_done == set()


def step() -> StreamStep:
    return StreamStep(stream_settings(embeddings=True, embedding_sample_rate=SAMPLE_RATE), {}, {})


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[name], b[name]) for name in a)


def test_what_is_measured_ahead_is_what_the_step_measures() -> None:
    helper = MeasureAhead(Recipe(PriceTable.of(), None, "static", SAMPLE_RATE))
    helper.start()
    try:
        measured(helper, RECORDS)
        found = helper.ready(RECORDS)
    finally:
        helper.stop()
    events = [parse_event(record) for record in RECORDS]
    assert all(found)  # two full chunks
    embedded = [i for i, (_, vector) in enumerate(found) if vector is not None]
    assert embedded == step().sample(events) and 0.3 < len(embedded) / len(events) < 0.7
    here, there = asyncio.run(measure(step(), events)), asyncio.run(measure(step(), events, ahead=found))
    assert all(same(a, b) for a, b in zip(here, there, strict=True))  # topics and the learned score included


def test_records_it_did_not_measure_are_left_to_the_step(ahead: MeasureAhead) -> None:
    measured(ahead, RECORDS[: CHUNK - 1])  # less than a chunk: kept back, not sent
    assert ahead.ready(RECORDS[: CHUNK - 1]) == [None] * (CHUNK - 1)
    measured(ahead, [*RECORDS[CHUNK - 1 : 2 * CHUNK - 1], b"not json"])
    found = ahead.ready([RECORDS[0], b"never fetched", b"not json", None])
    assert found[0] is not None and found[1:] == [None, None, None]
    assert ahead.ready([RECORDS[0]]) == [None]  # taken once: a record read again is measured in process


def test_a_helper_behind_gets_no_backlog() -> None:
    """Chunks sent while the helper still loads its models wait for it: past :data:`IN_FLIGHT` of them the records
    are not sent (the step measures them), so a helper that falls behind or hangs holds no growing queue."""
    helper = MeasureAhead(Recipe(PriceTable.of(), None, "static", SAMPLE_RATE))
    helper.start()
    try:
        records = [json.dumps({**json.loads(RECORDS[0]), "id": str(i)}).encode() for i in range(10_000)]
        for record in records[: (IN_FLIGHT + 8) * CHUNK]:
            helper.fetched(record)  # milliseconds: the helper is still importing
        assert len(helper.in_flight) == IN_FLIGHT
        assert len(helper.measured) == IN_FLIGHT * CHUNK and records[IN_FLIGHT * CHUNK] not in helper.measured
    finally:
        helper.stop()


def test_the_helpers_cpu_counts_as_its_stages(ahead: MeasureAhead) -> None:
    before = CLOCK.totals()
    measured(ahead, RECORDS[:CHUNK])
    time.sleep(0.5)  # the counts are added as each chunk's result arrives
    after = CLOCK.totals()
    assert all(after.get(stage, 0) > before.get(stage, 0) for stage in ("language", "features", "embedding"))


def test_a_helper_that_died_leaves_every_record_to_the_step(ahead: MeasureAhead) -> None:
    measured(ahead, RECORDS[:CHUNK])
    os.kill(next(iter(ahead.pool._processes.values())).pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while ahead.pool is not None and time.monotonic() < deadline:
        for record in RECORDS[CHUNK:]:
            ahead.fetched(record)  # a chunk sent to a dead pool fails there, or its submit does
        time.sleep(0.2)
        ahead.ready(RECORDS[CHUNK:])
    assert ahead.pool is None
    assert ahead.ready(RECORDS[CHUNK:]) == [None] * CHUNK
