"""Repartitioning by segment: the partition rule is Kafka's, a forwarded record keeps its traffic position, and
through the agent an event forwarded twice is counted once while a poison record is dead-lettered at the first
hop."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from aiokafka.partitioner import DefaultPartitioner
from kafka.partitioner.default import murmur2 as kafka_python_murmur2
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from driftloop.repartition import HEADER, forwarded, local_rule, segment_partition, source_header
from driftloop.settings import Settings
from monitor.agent import Record, TrafficAgent
from monitor.events import TrafficEvent
from monitor.metrics import MonitorMetrics
from monitor.sink import IncidentSink
from monitor.stream import StreamStep
from tests.factories import stream_settings

SEGMENTS = [f"{model}/{route}/t{tenant}" for model in ("a", "bb") for route in ("chat", "rag") for tenant in range(25)]


@pytest.mark.parametrize("partitions", [1, 4, 7])
def test_a_segment_goes_where_kafka_producers_put_its_key(partitions: int) -> None:
    every = list(range(partitions))
    for segment in SEGMENTS:
        key = segment.encode()
        assert segment_partition(segment, partitions) == DefaultPartitioner()(key, every, every)  # Faust's producer
        assert segment_partition(segment, partitions) == (kafka_python_murmur2(key) & 0x7FFFFFFF) % partitions


def test_traffic_partitioned_otherwise_is_never_local() -> None:
    assert not any(local_rule(8, 4)(segment, segment_partition(segment, 4)) for segment in SEGMENTS)
    assert all(local_rule(4, 4)(segment, segment_partition(segment, 4)) for segment in SEGMENTS)


def test_a_forwarded_record_keeps_its_traffic_position() -> None:
    for record in (Record(b"x", 2, 10, 11), Record(None, 0, 0, None)):
        assert forwarded(record.value, [("other", b"1"), (HEADER, source_header(record))]) == record
    for headers in (None, [], [("other", b"1")]):
        with pytest.raises(ValueError, match=HEADER):
            forwarded(b"x", headers)


def test_forwarded_twice_counted_once_and_poison_dead_lettered_at_the_first_hop(services: Settings) -> None:
    """Events of 100 segments spread over 4 partitions as a producer without keys would: the agent keeps those in
    their segment's partition and returns the others; processed with the others forwarded twice (a crash after
    forwarding, before the traffic offsets committed), every segment holds each of its events once."""
    step = StreamStep(stream_settings(), {}, {}, MonitorMetrics(CollectorRegistry()))
    events = [TrafficEvent(id=f"e{i}", model=s.split("/")[0], route=s.split("/")[1], tenant=s.split("/")[2],
                           prompt=f"p {i}") for i, s in enumerate(SEGMENTS * 3)]  # fmt: skip
    records = [Record(e.model_dump_json(by_alias=True).encode(), i % 4, i // 4, 10_000) for i, e in enumerate(events)]
    records.insert(7, Record(b"[" * 100_000 + b"]" * 100_000, 3, 999, 10_000))
    letters: list[bytes] = []

    async def dead_letter(key: bytes, value: bytes) -> None:
        letters.append((key, json.loads(value)["source"]))

    async def scenario() -> tuple[list[Record], list[tuple[str, Record]]]:
        redis = Redis.from_url(services.redis_url)
        await redis.flushdb()
        try:
            agent = TrafficAgent(step, redis, dead_letter, IncidentSink(redis), _ignore, step.metrics)
            here, away = await agent.route(records, local_rule(4, 4))
            again = [forwarded(record.value, [(HEADER, source_header(record))]) for _, record in away]
            for batch in (here + again[::2], again, again[1::2]):
                await agent.process(batch)
            return here, away
        finally:
            await redis.aclose()

    here, away = asyncio.run(scenario())
    assert letters == [(b"too_deep", {"topic": "llm.traffic", "partition": 3, "offset": 999})]
    assert all(record.event and segment_partition(record.event.segment, 4) == record.partition for record in here)
    assert all(segment_partition(segment, 4) != record.partition for segment, record in away)
    assert len(here) + len(away) == len(events)
    assert step.metrics.registry.get_sample_value("driftloop_events_forwarded_total") == len(away)
    assert {segment: step.segment(segment).events for segment in SEGMENTS} == Counter(e.segment for e in events)


async def _ignore(*_: object) -> None:
    """No webhooks here."""
