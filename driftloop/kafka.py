"""Topic set-up and a JSONL replayer, with kafka-python (synchronous: used by the CLI, not the agents)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from driftloop.settings import Settings


def ensure_topics(settings: Settings) -> None:
    """Create the loop's topics with ``settings.topic_partitions`` partitions if they are missing."""
    names = [settings.traffic_topic, settings.dlq_topic, settings.incidents_topic, settings.finetune_topic]
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="driftloop-admin")
    try:
        missing = set(names) - set(admin.list_topics())
        for name in sorted(missing):
            with contextlib.suppress(TopicAlreadyExistsError):  # another process created it meanwhile
                admin.create_topics([NewTopic(name, settings.topic_partitions, 1)])
    finally:
        admin.close()


def segment_key(event: dict) -> bytes:
    """Partition key: events of one segment go to one partition, where its detectors live."""
    request = event.get("request") if isinstance(event.get("request"), dict) else {}
    model = event.get("model") or request.get("model") or ""
    return f"{model}/{event.get('route', 'default')}/{event.get('tenant', 'default')}".encode()


def replay(
    lines: Iterable[str],
    settings: Settings,
    rate: float | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Publish JSONL lines to the traffic topic, at most ``rate`` events/s; lines that are not JSON are
    published as they are (the worker dead-letters them). Returns the count sent."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5, acks="all")
    started, sent = time.monotonic(), 0
    try:
        for line in lines:
            line = line.strip()
            if not line:
                continue
            try:
                key = segment_key(json.loads(line))
            except (json.JSONDecodeError, AttributeError):
                key = b"invalid"
            producer.send(settings.traffic_topic, key=key, value=line.encode())
            sent += 1
            progress(1)
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush()
    finally:
        producer.close()
    return sent
