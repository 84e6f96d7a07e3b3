"""Reading what the loop wrote (Redis records, Kafka topics) synchronously for tests, polling for it, and
running jobs and webhook deliveries on the test's real services."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from devtools.embedded import free_port, serve_in_thread
from driftloop.api import api_server
from driftloop.settings import Settings
from feedback import Dispatcher, GenerationJob, JobRunner, Webhook, datasets, jobs, webhooks
from feedback.egress import EgressPolicy
from feedback.metrics import FeedbackMetrics
from feedback.outbox import DeliveryLoop, Outbox
from feedback.pool import JobPool
from feedback.publishing import KafkaSend, Publisher
from feedback.storage import DatasetStore
from feedback.sweeper import sweep
from monitor.records import SegmentStatuses, StreamStats, incidents

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


def outbox_size(settings: Settings) -> int:
    """Webhook deliveries waiting or in flight."""
    return _read(settings, lambda r: Outbox(r).size())


def drained(settings: Settings, timeout: float = 30) -> None:
    """Wait until the delivery loops (the API's, a worker's) have delivered or dead-lettered every waiting delivery."""
    wait_for(lambda: outbox_size(settings) == 0, timeout, "the webhook outbox to drain", every=0.05)


def store_unchecked_webhook(settings: Settings, url: str, secret: str, event_types: tuple[str, ...] = ("*",)) -> str:
    """A subscription written straight to Redis, as a version that did not check secrets stored it; its id."""
    hook = Webhook(id=f"wh-old-{uuid.uuid4().hex[:6]}", url=url, event_types=list(event_types), secret=secret)
    assert _read(settings, lambda r: webhooks(r).create(hook))
    return hook.id


def accepted(settings: Settings) -> int:
    return _read(settings, lambda r: StreamStats(r).read()).get("accepted", 0)


def topic_messages(settings: Settings, topic: str, idle_ms: int = 1500) -> list[dict]:
    """Every message on ``topic`` from the beginning, as JSON."""
    return [json.loads(record.value) for record in topic_records(settings, topic, idle_ms)]


def topic_records(settings: Settings, topic: str, idle_ms: int = 1500, timeout_s: float = 120) -> list[ConsumerRecord]:
    """Every record on ``topic`` from the beginning: read until no record came for ``idle_ms``. With aiokafka, whose
    waits are bounded (kafka-python 3's consumer iterator can block forever after a broker restart); an error if
    the read takes over ``timeout_s``."""

    async def read() -> list[ConsumerRecord]:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer.topics()  # the cluster's metadata
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            if not partitions:
                return []  # no such topic (yet)
            consumer.assign(partitions)
            await consumer.seek_to_beginning()
            records: list[ConsumerRecord] = []
            while batch := await consumer.getmany(timeout_ms=idle_ms):
                records += [record for partition in batch.values() for record in partition]
            return records
        finally:
            await consumer.stop()

    return asyncio.run(asyncio.wait_for(read(), timeout_s))


def segment_events(settings: Settings) -> int:
    """Events the segments' monitors have folded in, all segments together (their latest statuses)."""
    return sum(events_by_segment(settings).values())


def events_by_segment(settings: Settings) -> dict[str, int]:
    """Segment → the events its monitor has folded in (its latest status)."""
    statuses = _read(settings, lambda r: SegmentStatuses(r).all())
    return {segment: status.events for segment, status in sorted(statuses.items())}


def wait_for(
    check: Callable[[], T], timeout: float, what: str, every: float = 0.25, explain: Callable[[], str] | None = None
) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` s, and with what
    ``explain`` says of the state then (read only on a timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}" + (f": {explain()}" if explain else ""))


def stream_positions(settings: Settings) -> dict[str, str]:
    """``topic-partition`` → the worker group's committed offset and the log's end, for the traffic topics."""

    async def read() -> dict[str, str]:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.app_id)
        await consumer.start()
        try:
            await consumer.topics()  # the cluster's metadata
            partitions = [
                TopicPartition(topic, partition)
                for topic in (settings.traffic_topic, settings.segments_topic)
                for partition in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            ends = await consumer.end_offsets(partitions)
            return {f"{tp.topic}-{tp.partition}": f"{await consumer.committed(tp)}/{ends[tp]}" for tp in partitions}
        finally:
            await consumer.stop()

    try:
        return asyncio.run(asyncio.wait_for(read(), 60))
    except (KafkaError, TimeoutError) as error:
        return {"unread": repr(error)}


@asynccontextmanager
async def services(settings: Settings) -> AsyncIterator[tuple[Redis, KafkaSend]]:
    """A Redis client and a sender to the finetune topic on the test's services, closed afterwards."""
    redis, send = Redis.from_url(settings.redis_url), KafkaSend(settings.kafka_bootstrap, settings.finetune_topic)
    try:
        yield redis, send
    finally:
        await send.close()
        await redis.aclose()


def runner(
    redis: Redis,
    send: KafkaSend,
    data_dir: Path,
    owner: str,
    metrics: FeedbackMetrics | None = None,
    **options: object,
) -> JobRunner:
    """A job runner named ``owner``: 60 samples a job, two quick webhook attempts, private receivers allowed; its
    dispatcher, publisher and itself count on ``metrics`` (a fresh registry's unless given)."""
    metrics = metrics or FeedbackMetrics(CollectorRegistry())
    dispatcher = Dispatcher(redis, attempts=2, backoff_s=0.05, policy=EgressPolicy(allow_private=True), metrics=metrics)
    return JobRunner(
        redis,
        DatasetStore(data_dir / "datasets"),
        Publisher(redis, send, dispatcher, metrics),
        dispatcher,
        samples_per_job=60,
        owner=owner,
        metrics=metrics,
        **options,
    )


async def swept(worker: JobRunner) -> list[GenerationJob | None]:
    """The jobs one sweep of ``worker`` ran (in a pool of its own), each as its attempt ended."""
    return list(await asyncio.gather(*await sweep(JobPool(worker, concurrency=1))))


@asynccontextmanager
async def delivering(dispatcher: Dispatcher, timeout: float = 30) -> AsyncIterator[None]:
    """Deliver ``dispatcher``'s outbox while the block runs, and after it until the outbox is empty."""
    async with DeliveryLoop(dispatcher.outbox, dispatcher.deliver, poll_s=0.05).running():
        yield
        deadline = time.monotonic() + timeout
        while await dispatcher.outbox.size():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for the webhook outbox to drain")
            await asyncio.sleep(0.05)


def run(settings: Settings, scenario: Callable[[Redis, KafkaSend], Awaitable[T]]) -> T:
    """Run the async ``scenario`` on :func:`services` and return what it returns."""

    async def go() -> T:
        async with services(settings) as (redis, send):
            return await scenario(redis, send)

    return asyncio.run(go())


@contextmanager
def served(settings: Settings) -> Iterator[str]:
    """The API as ``driftloop api`` serves it (uvicorn on 127.0.0.1); its base URL."""
    server = api_server(settings.model_copy(update={"api_port": free_port()}), host="127.0.0.1")
    serve_in_thread(server)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
