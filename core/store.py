"""Records in Redis shared by the workers and the API: pydantic models by id, listed newest first."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import WatchError

from core import keys

Record = TypeVar("Record", bound=BaseModel)
CREATE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
    redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
    return 1
end
return 0
"""
"""A record written and indexed at once, or neither (a Lua script runs whole): a process killed between the two
writes left a record that no listing showed (a job that ran and was never listed)."""


class Collection(Generic[Record]):
    """Pydantic records by ``id`` in Redis, listed newest first by ``time_field``; ``name`` is one of the
    collections of :mod:`core.keys`."""

    def __init__(self, redis: Redis, name: str, model: type[Record], time_field: str = "created_at") -> None:
        self.redis, self.name, self.model, self.time_field = redis, name, model, time_field

    def _key(self, record_id: str) -> str:
        return keys.record(self.name, record_id)

    @property
    def _index(self) -> str:
        return keys.index(self.name)

    async def create(self, record: Record) -> bool:
        """Store a new record; False (and nothing written) when its id exists: the idempotency guard."""
        when: datetime = getattr(record, self.time_field)
        keys_and_args = (self._key(record.id), self._index, record.model_dump_json(), when.timestamp(), record.id)
        return bool(await self.redis.eval(CREATE, 2, *keys_and_args))

    async def save(self, record: Record) -> None:
        """Overwrite an existing record."""
        await self.redis.set(self._key(record.id), record.model_dump_json())

    async def update(self, record_id: str, change: Callable[[Record], Record]) -> Record | None:
        """Replace a record by ``change(record)`` atomically, retrying when another writer got in between;
        None when there is no such record. Exceptions of ``change`` propagate and nothing is written."""
        key = self._key(record_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return None
                    record = change(self.model.model_validate_json(raw))
                    pipe.multi()
                    pipe.set(key, record.model_dump_json())
                    await pipe.execute()
                    return record
                except WatchError:
                    continue

    async def get(self, record_id: str) -> Record | None:
        raw = await self.redis.get(self._key(record_id))
        return self.model.model_validate_json(raw) if raw else None

    async def list(self, limit: int = 50, offset: int = 0) -> list[Record]:
        ids = await self.redis.zrevrange(self._index, offset, offset + limit - 1)
        raws = await self.redis.mget([self._key(i.decode()) for i in ids]) if ids else []
        return [self.model.model_validate_json(raw) for raw in raws if raw]

    async def remove(self, record_id: str) -> bool:
        """Delete a record and its index entry; False when there was no record."""
        removed = await self.redis.delete(self._key(record_id))
        await self.redis.zrem(self._index, record_id)
        return bool(removed)

    async def count(self) -> int:
        return await self.redis.zcard(self._index)
