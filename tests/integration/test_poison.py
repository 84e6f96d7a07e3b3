"""Poison on a real broker and Redis: every record that cannot be read, and every event that keeps failing after it
was read, goes to the dead letters with its reason and is counted; the events after it are processed, and the
segments hold exactly the events accepted."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from devtools.embedded import worker_process
from devtools.traffic import shifted_stream
from driftloop.kafka import ensure_topics, replay
from driftloop.settings import Settings
from feedback.publishing import KafkaSend
from monitor.agent import Record, TrafficAgent
from monitor.events import TrafficEvent
from monitor.features import Measurements
from monitor.metrics import MonitorMetrics
from monitor.records import StreamStats
from monitor.sink import IncidentSink
from monitor.stream import Outcomes, StreamStep
from tests.integration.helpers import accepted, run, segment_events, topic_messages, topic_records, wait_for

pytestmark = pytest.mark.integration
AFTER = 5
"""Valid events sent after each poison record."""


def traffic(count: int, seed: int = 31) -> list[dict]:
    return list(shifted_stream(count, None, seed=seed))


def poison(event: dict) -> list[tuple[str, bytes]]:
    """(reason, record): each poison of issue 13, made from a real ``event``."""

    def written(value: str, **changes: object) -> bytes:
        """``event`` with ``changes``, the placeholder ``"X"`` in it replaced by ``value`` as written."""
        return json.dumps({**event, **changes}).replace('"X"', value).encode()

    return [
        ("too_deep", written("[" * 100_000 + "]" * 100_000, metadata={"x": "X"})),
        ("not_json", json.dumps(event).encode().replace(b'"prompt": "', b'"prompt": "\xc3\x28', 1)),
        ("too_large", json.dumps({**event, "prompt": "word " * 80_000}).encode()),
        ("not_finite", written("NaN", latency_ms="X")),
        ("not_finite", written("Infinity", latency_ms="X")),
        ("not_finite", written("-Infinity", latency_ms="X")),
        ("not_finite", written("1e999", prompt_tokens="X")),
        ("invalid_unicode", json.dumps({**event, "prompt": "\ud83d half an emoji"}).encode()),
        ("not_json", json.dumps({**event, "prompt": "a BEL"}).encode().replace(b"a BEL", b"a raw \x07")),
    ]


def test_each_poison_record_is_dead_lettered_and_the_events_after_it_are_processed(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"max_event_bytes": 300_000})
    valid = traffic(len(poison({})) * AFTER + AFTER + 1)
    controls = {**valid.pop(), "prompt": "colours \u001b[31mred\u001b[0m, a NUL \u0000, a bidi mark \u202e"}
    records: list[bytes] = [json.dumps(controls).encode()]  # escaped control characters are text: accepted
    expected, poisoned = [], []
    base = {**valid[0], "prompt": "what is drift?"}
    for (reason, record), after in zip(poison(base), range(0, len(valid), AFTER), strict=False):
        records += [record, *(json.dumps(event).encode() for event in valid[after : after + AFTER])]
        expected.append(reason)
        poisoned.append(record)
    tail = [json.dumps(event).encode() for event in valid[len(expected) * AFTER :]]
    assert len(tail) == AFTER
    ensure_topics(settings)
    with worker_process(settings, tmp_path / "worker.log") as worker:
        published = replay(records, settings)
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        producer.send(settings.traffic_topic, key=b"tombstone", value=None).get(timeout=30)  # a null value
        published_tail = replay(tail, settings)
        wait_for(lambda: accepted(settings) >= len(valid) + 1, 120, "the valid events after the poison")
        # last, a record on the segments topic that no worker forwarded: its dead letter names that topic
        stray = producer.send(settings.segments_topic, key=b"stray", value=b"{}").get(timeout=30)
        producer.close()
        reasons = [*expected, "not_json", "unexpected_error"]
        letters = wait_for(
            lambda: len(found := topic_messages(settings, settings.dlq_topic)) >= len(reasons) and found,
            30,
            "the dead letters",
        )
        assert worker.poll() is None, "the worker died"
        metrics = httpx.get(f"http://127.0.0.1:{settings.worker_metrics_port}/metrics").text

    sent = published.sent + 1 + published_tail.sent + 1
    assert (published.failed, published_tail.failed) == (0, 0)
    assert [letter["reason"] for letter in letters] == reasons
    assert all(letter["detail"] and letter["redacted"] for letter in letters)
    at = {(record.partition, record.offset): record.value for record in topic_records(settings, settings.traffic_topic)}
    assert {letter["source"]["topic"] for letter in letters[:-1]} == {settings.traffic_topic}
    sources = [at[letter["source"]["partition"], letter["source"]["offset"]] for letter in letters[:-1]]
    assert sources == [*poisoned, None], "each dead letter names its record in the traffic topic"
    assert letters[-1]["source"] == {
        "topic": settings.segments_topic,
        "partition": stray.partition,
        "offset": stray.offset,
    }
    counts = run(settings, lambda redis, _: StreamStats(redis).read())
    rejected = {key.removeprefix("rejected:"): n for key, n in counts.items() if key.startswith("rejected:")}
    assert counts["accepted"] == len(valid) + 1 == segment_events(settings)
    assert counts["accepted"] + sum(rejected.values()) == sent
    assert rejected == {reason: reasons.count(reason) for reason in set(reasons)}
    for reason, count in rejected.items():
        assert f'driftloop_events_rejected_total{{reason="{reason}"}} {count}.0' in metrics


class Faulty(StreamStep):
    """Observes like :class:`StreamStep` but fails on the prompt ``boom``, after folding in the events before it
    (as a detector that raises half-way through a batch would), ``failures`` times (``None``: every time)."""

    def __init__(self, settings: Settings, failures: int | None = None) -> None:
        super().__init__(settings, {}, {})
        self.failures = failures

    def observe(self, events: list[TrafficEvent], inputs: list[Measurements]) -> Outcomes:
        bad = next((i for i, event in enumerate(events) if event.prompt == "boom"), None)
        if bad is None or self.failures == 0:
            return super().observe(events, inputs)
        if self.failures is not None:
            self.failures -= 1
        super().observe(events[:bad], inputs[:bad])
        raise RuntimeError("detector failed half-way")


async def _ignore(*_: object) -> None:
    """No webhook receivers here."""


def process(settings: Settings, step: StreamStep, records: list[Record]) -> MonitorMetrics:
    """Run ``records`` through a :class:`TrafficAgent` on ``step``, dead letters to the DLQ topic; its metrics."""
    metrics = MonitorMetrics(CollectorRegistry())

    async def scenario(redis: Redis, _: KafkaSend) -> None:
        dead_letters = KafkaSend(settings.kafka_bootstrap, settings.dlq_topic)
        send = lambda key, value: dead_letters(key.decode(), value)  # noqa: E731
        agent = TrafficAgent(step, redis, send, IncidentSink(redis), _ignore, metrics)
        try:
            await agent.process(records)
        finally:
            await dead_letters.close()

    ensure_topics(settings)
    run(settings, scenario)
    return metrics


def with_boom(events: list[dict]) -> list[Record]:
    """``events`` as records, a ``boom`` event of the first one's segment in the middle."""
    middle = len(events) // 2
    boom = {**events[0], "id": "boom-1", "prompt": "boom"}
    values = [json.dumps(event).encode() for event in [*events[:middle], boom, *events[middle:]]]
    return [Record(value, 0, offset) for offset, value in enumerate(values)]


def test_an_event_that_keeps_failing_is_dead_lettered_alone_and_counted_once(settings: Settings) -> None:
    step = Faulty(settings)
    metrics = process(settings, step, with_boom(traffic(40)))

    [letter] = topic_messages(settings, settings.dlq_topic)
    assert letter["reason"] == "processing_error" and letter["detail"] == "RuntimeError: detector failed half-way"
    assert '"boom"' in letter["event"] and letter["redacted"]
    assert letter["source"] == {"topic": settings.traffic_topic, "partition": 0, "offset": 20}  # its record
    # three tries of the batch and the events alone, each folding in part of the batch: the segments count each
    # accepted event once, since a failed try puts their state back
    assert sum(monitor.events for monitor in step.monitors.values()) == 40 == segment_events(settings)
    assert run(settings, lambda redis, _: StreamStats(redis).read()) == {"accepted": 40, "rejected:processing_error": 1}
    sample = metrics.registry.get_sample_value
    assert sample("driftloop_events_rejected_total", {"reason": "processing_error"}) == 1
    assert sample("driftloop_events_total", {"outcome": "accepted"}) == 40


def test_a_batch_that_fails_once_is_tried_again_whole(settings: Settings) -> None:
    step = Faulty(settings, failures=1)
    process(settings, step, with_boom(traffic(40)))

    assert topic_messages(settings, settings.dlq_topic) == []
    assert sum(monitor.events for monitor in step.monitors.values()) == 41 == accepted(settings)


def test_a_record_that_cannot_be_admitted_is_an_unexpected_error(settings: Settings) -> None:
    """A corrupt checkpoint of one segment: its events are dead-lettered, the other segments' go on."""
    event = traffic(1)[0]
    broken = {**event, "model": "broken"}
    step = StreamStep(settings, {b"broken/chat/acme": b"not a pickle"}, {})
    values = [None, json.dumps({**broken, "route": "chat", "tenant": "acme"}).encode(), json.dumps(event).encode()]
    process(settings, step, [Record(value, 0, offset) for offset, value in enumerate(values)])

    letters = topic_messages(settings, settings.dlq_topic)
    assert [letter["reason"] for letter in letters] == ["not_json", "unexpected_error"]
    assert letters[1]["detail"].startswith("UnpicklingError")
    assert accepted(settings) == 1
