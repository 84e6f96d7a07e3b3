"""Topic set-up and a JSONL replayer, with kafka-python (synchronous: used by the CLI, not the agents)."""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import NamedTuple

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from driftloop.settings import Settings


def ensure_topics(settings: Settings, compacted: Iterable[str] = ()) -> list[str]:
    """Create the loop's topics, and the ``compacted`` ones (the worker's table changelogs), with
    ``settings.topic_partitions`` partitions if they are missing; the names of those it created."""
    names = [
        settings.traffic_topic,
        settings.dlq_topic,
        settings.incidents_topic,
        settings.finetune_topic,
        settings.results_topic,
        settings.segments_topic,
    ]
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="driftloop-admin")
    try:
        compacted = set(compacted)
        missing = sorted((set(names) | compacted) - set(admin.list_topics()))
        for name in missing:
            configs = {"cleanup.policy": "compact"} if name in compacted else None
            with contextlib.suppress(TopicAlreadyExistsError):  # another process created it meanwhile
                admin.create_topics([NewTopic(name, settings.topic_partitions, 1, topic_configs=configs)])
    finally:
        admin.close()
    return missing


class Described(NamedTuple):
    """A topic as the broker describes it: its id (a recreated topic, or one of a broker that lost its data, has a
    new one; None where the broker gives none) and its number of partitions."""

    id: str | None
    partitions: int


def describe_topic(settings: Settings, topic: str) -> Described:
    """The topic's id and partition count, from the broker; the broker's error for the topic raised (a missing topic,
    or one without a leader yet, is described with no partitions: taken as a count, it would be wrong)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="driftloop-admin")
    try:
        [described] = admin.describe_topics([topic])
    finally:
        admin.close()
    if described.get("error_code"):
        raise for_code(described["error_code"])(f"topic {topic}")
    found = described.get("topic_id")
    known = None if found in (None, "", "00000000-0000-0000-0000-000000000000") else str(found)
    return Described(known, len(described.get("partitions") or ()))


def segment_key(event: dict) -> bytes:
    """Partition key: events of one segment go to one partition, where its detectors live (any other key works too,
    at the cost of a hop: the worker forwards an event produced elsewhere to its segment's partition)."""
    request = event.get("request") if isinstance(event.get("request"), dict) else {}
    model = event.get("model") or request.get("model") or ""
    return f"{model}/{event.get('route', 'default')}/{event.get('tenant', 'default')}".encode()


class Replayed(NamedTuple):
    """What a replay published: events the broker acknowledged, events it did not, and the errors by type."""

    sent: int
    failed: int
    errors: Counter[str]


def _key(line: bytes) -> bytes:
    """The line's segment key; ``b"invalid"`` for a line that is not a JSON object (the worker dead-letters it)."""
    try:
        return segment_key(json.loads(line))
    except (ValueError, RecursionError, AttributeError):
        return b"invalid"


def replay(
    lines: Iterable[str | bytes],
    settings: Settings,
    rate: float | None = None,
    progress: Callable[[int], None] = lambda n: None,
    delivery_timeout_s: float = 120.0,
) -> Replayed:
    """Publish JSONL lines to the traffic topic, at most ``rate`` events/s; lines that are not JSON are published
    as they are (the worker dead-letters them). Every send is checked: the producer retries transient failures
    with backoff for up to ``delivery_timeout_s``; a send the broker has not acknowledged by then, or one it
    refuses (a record over its size limit, a broker unreachable), counts as failed."""
    timeout_ms = int(delivery_timeout_s * 1000)
    sent, errors = 0, Counter[str]()

    def acknowledged(_: object) -> None:
        nonlocal sent
        sent += 1  # callbacks run on the producer's one I/O thread

    def refused(error: BaseException) -> None:
        errors[type(error).__name__] += 1

    started, published = time.monotonic(), 0
    lines = (line.encode() if isinstance(line, str) else line for line in lines)
    try:
        producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            linger_ms=5,
            acks="all",
            delivery_timeout_ms=timeout_ms,
            request_timeout_ms=min(30_000, timeout_ms),
            max_block_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
        )
    except KafkaError as error:
        count = sum(1 for line in lines if line.strip())
        return Replayed(0, count, Counter({type(error).__name__: count}))
    try:
        for line in lines:
            line = line.strip()
            if not line:
                continue
            try:
                future = producer.send(settings.traffic_topic, key=_key(line), value=line)
                future.add_callback(acknowledged).add_errback(refused)
            except KafkaError as error:  # over the size limit, no metadata or buffer within the timeout
                refused(error)
            published += 1
            progress(1)
            if rate:
                ahead = published / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush()
    finally:
        producer.close()
    return Replayed(sent, published - sent, errors)
