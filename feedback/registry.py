"""The dataset registry in Redis: manifests by id (indexed by creation time), filtered queries, and the
acknowledgements that close ``finetune.requests`` messages.

A version's fine-tuning request is *open* from the moment the version is registered until a training system
acknowledges it (``POST /v1/datasets/{id}/ack``); retention never deletes a version whose request is open.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from core import keys
from core.store import Collection
from feedback.manifest import DatasetManifest

CHUNK = 500


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class DatasetFilter(BaseModel):
    """Which versions a query returns; every set field must match."""

    incident_id: str | None = None
    segment: str | None = None
    """A full segment (``model/route/tenant``) or a prefix of whole parts (``model``, ``model/route``)."""
    technique: str | None = None
    """Versions with at least one sample made by this technique."""
    created_after: datetime | None = None
    created_before: datetime | None = None

    def matches(self, manifest: DatasetManifest) -> bool:
        segment = manifest.lineage.segment
        return (
            (self.incident_id is None or manifest.lineage.incident_id == self.incident_id)
            and (self.segment is None or segment == self.segment or segment.startswith(self.segment.rstrip("/") + "/"))
            and (self.technique is None or manifest.quality.by_technique.get(self.technique, 0) > 0)
        )


class DatasetRegistry:
    """Dataset manifests in Redis, newest first: the records the job runner creates."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.records: Collection[DatasetManifest] = Collection(redis, keys.DATASET, DatasetManifest)

    async def register(self, manifest: DatasetManifest) -> bool:
        """Record a version; False when it is already registered."""
        return await self.records.create(manifest)

    async def get(self, dataset_id: str) -> DatasetManifest | None:
        return await self.records.get(dataset_id)

    async def query(
        self, where: DatasetFilter | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[int, list[DatasetManifest]]:
        """(total matching, one page of them), newest first. Time bounds are exclusive and use the index."""
        where = where or DatasetFilter()
        high = f"({_utc(where.created_before).timestamp()}" if where.created_before else "+inf"
        low = f"({_utc(where.created_after).timestamp()}" if where.created_after else "-inf"
        ids = [i.decode() for i in await self.redis.zrevrangebyscore(keys.index(keys.DATASET), high, low)]
        if where.model_dump(exclude_none=True, exclude={"created_after", "created_before"}):
            matching = [m for m in await self._load(ids) if where.matches(m)]
            return len(matching), matching[offset : offset + limit]
        return len(ids), await self._load(ids[offset : offset + limit])

    async def all(self) -> list[DatasetManifest]:
        """Every registered version, newest first."""
        return (await self.query(limit=2**31))[1]

    async def _load(self, ids: list[str]) -> list[DatasetManifest]:
        manifests = []
        for start in range(0, len(ids), CHUNK):
            raws = await self.redis.mget([keys.record(keys.DATASET, i) for i in ids[start : start + CHUNK]])
            manifests += [DatasetManifest.model_validate_json(raw) for raw in raws if raw]
        return manifests

    async def remove(self, dataset_id: str) -> bool:
        """Forget a version (its record and index entry); False when it was not registered."""
        return await self.records.remove(dataset_id)


class Ack(BaseModel):
    """A training system's acknowledgement of a version's ``finetune.requests`` message."""

    dataset_id: str
    consumer: str | None = None
    acked_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class AckStore:
    """Acknowledgements by dataset id (one Redis hash); the first ack of a version is the one kept."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def ack(self, dataset_id: str, consumer: str | None = None) -> Ack:
        """Close the version's request; acknowledging again returns the first ack unchanged."""
        await self.redis.hsetnx(
            keys.FINETUNE_ACKS, dataset_id, Ack(dataset_id=dataset_id, consumer=consumer).model_dump_json()
        )
        return await self.get(dataset_id)  # type: ignore[return-value]

    async def get(self, dataset_id: str) -> Ack | None:
        raw = await self.redis.hget(keys.FINETUNE_ACKS, dataset_id)
        return Ack.model_validate_json(raw) if raw else None

    async def is_open(self, dataset_id: str) -> bool:
        """True until a training system acknowledges the version (also before its message has gone out)."""
        return not await self.redis.hexists(keys.FINETUNE_ACKS, dataset_id)

    async def forget(self, dataset_id: str) -> None:
        """Drop the ack of a deleted version, so a version re-created with the same id is open again."""
        await self.redis.hdel(keys.FINETUNE_ACKS, dataset_id)


async def is_open(redis: Redis, dataset_id: str) -> bool:
    """Whether the ``finetune.requests`` message of ``dataset_id`` is still unacknowledged."""
    return await AckStore(redis).is_open(dataset_id)
