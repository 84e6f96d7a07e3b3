"""Records in Redis shared by the workers and the API: incidents, jobs, datasets, stream counters."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel
from redis.asyncio import Redis

from monitor.incidents import DriftIncident

PREFIX = "driftloop"
Record = TypeVar("Record", bound=BaseModel)


class Collection(Generic[Record]):
    """Pydantic records by ``id`` in Redis, listed newest first by ``time_field``."""

    def __init__(self, redis: Redis, name: str, model: type[Record], time_field: str = "created_at") -> None:
        self.redis, self.name, self.model, self.time_field = redis, name, model, time_field

    def _key(self, record_id: str) -> str:
        return f"{PREFIX}:{self.name}:{record_id}"

    async def create(self, record: Record) -> bool:
        """Store a new record; False (and nothing written) when its id exists: the idempotency guard."""
        created = await self.redis.set(self._key(record.id), record.model_dump_json(), nx=True)
        if created:
            when: datetime = getattr(record, self.time_field)
            await self.redis.zadd(f"{PREFIX}:{self.name}s", {record.id: when.timestamp()})
        return bool(created)

    async def save(self, record: Record) -> None:
        """Overwrite an existing record."""
        await self.redis.set(self._key(record.id), record.model_dump_json())

    async def get(self, record_id: str) -> Record | None:
        raw = await self.redis.get(self._key(record_id))
        return self.model.model_validate_json(raw) if raw else None

    async def list(self, limit: int = 50, offset: int = 0) -> list[Record]:
        ids = await self.redis.zrevrange(f"{PREFIX}:{self.name}s", offset, offset + limit - 1)
        raws = await self.redis.mget([self._key(i.decode()) for i in ids]) if ids else []
        return [self.model.model_validate_json(raw) for raw in raws if raw]

    async def count(self) -> int:
        return await self.redis.zcard(f"{PREFIX}:{self.name}s")


class StreamStats:
    """Counters of the traffic stream (accepted, rejected by reason) that outlive a worker."""

    KEY = f"{PREFIX}:stream"

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def accepted(self, count: int = 1) -> None:
        await self.redis.hincrby(self.KEY, "accepted", count)

    async def rejected(self, reason: str) -> None:
        await self.redis.hincrby(self.KEY, f"rejected:{reason}", 1)

    async def read(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in (await self.redis.hgetall(self.KEY)).items()}


def incidents(redis: Redis) -> Collection[DriftIncident]:
    """The incident records, newest first."""
    return Collection(redis, "incident", DriftIncident, time_field="detected_at")
