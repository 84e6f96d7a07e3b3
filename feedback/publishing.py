"""Publishing a dataset version: one ``finetune.requests`` message (training sets only: an evaluation set is not
sent to fine-tuning) and ``dataset.published`` webhooks (every version; ``data.kind`` says which).

The worker (after a job) and the API (after an approval) publish through the same ``Publisher``, so the
message is built and sent one way. Exactly once as seen by a consumer that dedups on the CloudEvents
``id`` (the dataset id): a marker in Redis keeps the message from being sent again once it was acked.
Publishers of one version never run at once: the worker publishes under its job lease, and approvals
take a claim in Redis.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from core import keys
from core.errors import Conflict, Unavailable
from core.store import Collection
from feedback.datasets import DatasetManifest
from feedback.finetune import announcement, finetune_request
from feedback.manifest import DatasetKind
from feedback.metrics import FeedbackMetrics
from feedback.webhooks import Dispatcher

Send = Callable[[str, bytes], Awaitable[None]]
"""Sends (key, value) to the ``finetune.requests`` topic and returns once the broker has it."""

CLAIM_S = 120
"""How long an approval may hold its claim (the API process died mid-approval: it lapses)."""


class PublicationState(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    PUBLISHED = "published"


class Publication(BaseModel):
    """Where a dataset version stands on its way to training systems (id: the dataset id)."""

    id: str
    job_id: str
    incident_id: str
    state: PublicationState = PublicationState.PENDING_APPROVAL
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    approved_at: datetime | None = None
    published_at: datetime | None = None


class PublicationBusy(Conflict, RuntimeError):
    """Another process is publishing this dataset version right now."""

    def __init__(self, dataset_id: str) -> None:
        self.dataset_id = dataset_id
        super().__init__(f"dataset {dataset_id} is being published by another process")


class NotPending(Conflict, ValueError):
    """The dataset version is not waiting for approval (never held, or already published)."""

    def __init__(self, dataset_id: str, state: str | None) -> None:
        self.dataset_id, self.state = dataset_id, state
        super().__init__(f"dataset {dataset_id} is not awaiting approval" + (f" (it is {state})" if state else ""))


class BrokerUnavailable(Unavailable, RuntimeError):
    """The broker did not take a message on ``topic``."""

    def __init__(self, topic: str, error: KafkaError) -> None:
        self.topic, self.error = topic, error
        super().__init__(f"the broker did not take the {topic} message: {error}")


def publications(redis: Redis) -> Collection[Publication]:
    """Publication records, newest first."""
    return Collection(redis, keys.PUBLICATION, Publication)


class Publisher:
    """Holds dataset versions for approval or publishes them, exactly once per version."""

    def __init__(
        self, redis: Redis, send: Send, dispatcher: Dispatcher, metrics: FeedbackMetrics | None = None
    ) -> None:
        self.redis, self.send, self.dispatcher = redis, send, dispatcher
        self.metrics = metrics or FeedbackMetrics.default()

    async def hold(self, manifest: DatasetManifest) -> Publication:
        """Keep ``manifest`` in ``pending_approval`` (a version held or published before stays as it is)."""
        record = _record(manifest)
        if await publications(self.redis).create(record):
            return record
        return await publications(self.redis).get(manifest.id) or record

    async def approve(self, manifest: DatasetManifest) -> Publication:
        """Publish a held version; approving a published one again returns it unchanged."""
        claim = keys.publication_claim(manifest.id)
        if not await self.redis.set(claim, uuid.uuid4().hex, nx=True, ex=CLAIM_S):
            raise PublicationBusy(manifest.id)
        try:
            record = await publications(self.redis).get(manifest.id)
            if record is None:
                raise NotPending(manifest.id, None)
            if record.state == PublicationState.PUBLISHED:
                return record
            return await self.publish(manifest, approved=True)
        finally:
            await self.redis.delete(claim)

    async def publish(self, manifest: DatasetManifest, approved: bool = False) -> Publication:
        """Send the ``finetune.requests`` message of a training set (unless it went out already), then record the
        webhooks in the outbox (no receiver is waited on); the caller makes sure nobody else publishes this version
        meanwhile (job lease or approval claim)."""
        record = await publications(self.redis).get(manifest.id) or _record(manifest)
        if record.state == PublicationState.PUBLISHED:
            return record
        sent = keys.finetune_published(manifest.id)
        if manifest.kind == DatasetKind.TRAINING and not await self.redis.exists(sent):
            await self.send(manifest.id, json.dumps(finetune_request(manifest)).encode())
            await self.redis.set(sent, 1)
            self.metrics.finetune_requests.inc()
        await self.dispatcher.dispatch("dataset.published", manifest.id, announcement(manifest))
        now = datetime.now(UTC)
        record.state, record.published_at = PublicationState.PUBLISHED, now
        record.approved_at = now if approved else record.approved_at
        if not await publications(self.redis).create(record):
            await publications(self.redis).save(record)
        return record


def _record(manifest: DatasetManifest) -> Publication:
    return Publication(id=manifest.id, job_id=manifest.lineage.job_id, incident_id=manifest.lineage.incident_id)


class KafkaSend:
    """A ``Send`` for processes without a Faust app (the API): an aiokafka producer started on first use."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, key: str, value: bytes) -> None:
        """Send, or raise :class:`BrokerUnavailable`."""
        try:
            async with self._lock:
                if self._producer is None:
                    producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
                    await producer.start()
                    self._producer = producer
            await self._producer.send_and_wait(self.topic, value, key=key.encode())
        except KafkaError as error:
            raise BrokerUnavailable(self.topic, error) from error

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
