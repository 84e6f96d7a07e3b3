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
from monitor.measure_ahead import CHUNK, IN_FLIGHT, KEPT, MeasureAhead, Recipe
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


def record(i: int) -> bytes:
    """A small real record with its own bytes (``RECORDS[0]`` under another id)."""
    return json.dumps({**json.loads(RECORDS[0]), "id": f"r{i}"}).encode()


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
    here = asyncio.run(measure(step(), events))
    mixed = [found[i] if i % 3 else None for i in range(len(found))]  # some taken ahead, the others measured here
    for ahead in (found, mixed):
        there = asyncio.run(measure(step(), events, ahead=ahead))
        assert all(same(a, b) for a, b in zip(here, there, strict=True))  # topics and the learned score included
    assert all("topic_novelty" not in result[0] for result in found), "what was taken ahead is left as it was"


def test_records_it_did_not_measure_are_left_to_the_step(ahead: MeasureAhead) -> None:
    measured(ahead, RECORDS[: CHUNK - 1])  # less than a chunk: kept back, not sent
    assert ahead.ready(RECORDS[: CHUNK - 1]) == [None] * (CHUNK - 1)
    measured(ahead, RECORDS[CHUNK - 1 : 2 * CHUNK - 2])  # the step took the first ones: still less than a chunk
    assert not ahead.chunks and len(ahead.waiting) == CHUNK - 1
    measured(ahead, [b"not json"])  # the chunk's last record: the helper reads no event in it
    found = ahead.ready([RECORDS[CHUNK], b"never fetched", b"not json", None])
    assert found[0] is not None and found[1:] == [None, None, None]
    assert ahead.ready([RECORDS[CHUNK]]) == [None]  # taken once: a record read again is measured in process


def test_records_never_taken_keep_a_bounded_number_of_chunks(ahead: MeasureAhead) -> None:
    """A dead-lettered, forwarded or revoked record is never taken: its chunk's results stay only among the last
    :data:`KEPT` records' chunks."""
    chunks = KEPT // CHUNK + 6
    for c in range(chunks):
        measured(ahead, [record(c * CHUNK + i) for i in range(CHUNK)])
        assert ahead.ready([record(c * CHUNK + i) for i in range(1, CHUNK)])[-1] is not None  # all but the first
    assert len(ahead.chunks) == KEPT // CHUNK and len(ahead.measured) == KEPT // CHUNK
    assert ahead.ready([record(0)]) == [None] and ahead.ready([record((chunks - 1) * CHUNK)])[0] is not None


def test_a_helper_behind_gets_no_backlog() -> None:
    """Chunks sent while the helper still loads its models wait for it: past :data:`IN_FLIGHT` of them the records
    are not sent (the step measures them), so a helper that falls behind or hangs holds no growing queue."""
    helper = MeasureAhead(Recipe(PriceTable.of(), None, "static", SAMPLE_RATE))
    helper.start()
    try:
        for i in range((IN_FLIGHT + 8) * CHUNK):
            helper.fetched(record(i))  # milliseconds: the helper is still importing
        assert len(helper.in_flight) == IN_FLIGHT
        assert len(helper.measured) == IN_FLIGHT * CHUNK and record(IN_FLIGHT * CHUNK) not in helper.measured
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
    sent, deadline = [], time.monotonic() + 30
    while ahead.pool is not None and time.monotonic() < deadline:
        chunk = [record(len(sent) + i) for i in range(CHUNK)]
        for value in chunk:
            ahead.fetched(value)  # sent to a pool that is broken, or refused by it
        sent += chunk
        time.sleep(0.2)
    assert ahead.pool is None, "the helper's death was not noticed"
    wait({future for future, _ in ahead.measured.values()}, timeout=30)
    assert ahead.ready(sent) == [None] * len(sent)
    assert ahead.ready(RECORDS[:CHUNK])[0] is not None  # measured before it died


def test_start_is_idempotent_and_stop_ends_the_helper_at_once() -> None:
    helper = MeasureAhead(Recipe(PriceTable.of(), None, "static", SAMPLE_RATE))
    helper.start()
    pool = helper.pool
    helper.start()
    assert helper.pool is pool
    process = next(iter(pool._processes.values()))
    helper.stop()  # while it loads its models
    process.join(10)
    assert not process.is_alive() and helper.pool is None
