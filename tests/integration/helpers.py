"""Reading what the loop wrote: Redis records and Kafka topics, synchronously for tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

from kafka import KafkaConsumer
from redis.asyncio import Redis

from driftloop.settings import Settings
from feedback import Dispatcher, datasets, jobs
from monitor import StreamStats, incidents
from monitor.records import SegmentStatuses

T = TypeVar("T")


def _read(settings: Settings, read: Callable[[Redis], Awaitable[T]]) -> T:
    async def go() -> T:
        redis = Redis.from_url(settings.redis_url)
        try:
            return await read(redis)
        finally:
            await redis.aclose()

    return asyncio.run(go())


def stored_incidents(settings: Settings) -> list:
    return _read(settings, lambda r: incidents(r).list(limit=500))


def stored_jobs(settings: Settings) -> list:
    return _read(settings, lambda r: jobs(r).list(limit=500))


def stored_datasets(settings: Settings) -> list:
    return _read(settings, lambda r: datasets(r).list(limit=500))


def delivery_log(settings: Settings) -> list:
    return _read(settings, lambda r: Dispatcher(r).log(limit=1000))


def accepted(settings: Settings) -> int:
    return _read(settings, lambda r: StreamStats(r).read()).get("accepted", 0)


def topic_messages(settings: Settings, topic: str, idle_ms: int = 1500) -> list[dict]:
    """Every message on ``topic`` from the beginning, as JSON."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=idle_ms,
    )
    try:
        return [json.loads(message.value) for message in consumer]
    finally:
        consumer.close()


def segment_events(settings: Settings) -> int:
    """Events the segments' monitors have folded in, all segments together (their latest statuses)."""
    return sum(status.events for status in _read(settings, lambda r: SegmentStatuses(r).all()).values())
