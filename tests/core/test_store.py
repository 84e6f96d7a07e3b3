"""Records in a real redis-server: created once (one script writes the record and its index entry), listed newest
first. That a killed process leaves no record unlisted is shown by ``tests/faults`` (two workers, one killed)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel
from redis.asyncio import Redis

from core import keys
from core.store import Collection
from driftloop.settings import Settings

pytestmark = pytest.mark.integration


class Note(BaseModel):
    id: str
    text: str
    created_at: datetime


def test_a_record_is_created_once_and_listed_newest_first(settings: Settings) -> None:
    async def scenario() -> tuple[list[bool], list[str], str, int]:
        redis = Redis.from_url(settings.redis_url)
        try:
            notes = Collection(redis, "notes", Note)
            made = [
                await notes.create(Note(id="a", text="first", created_at=datetime(2026, 1, 1, tzinfo=UTC))),
                await notes.create(Note(id="b", text="second", created_at=datetime(2026, 1, 2, tzinfo=UTC))),
                await notes.create(Note(id="a", text="again", created_at=datetime(2026, 1, 3, tzinfo=UTC))),
            ]
            listed = [note.id for note in await notes.list()]
            kept = (await notes.get("a")).text
            return made, listed, kept, await redis.zcard(keys.index("notes"))
        finally:
            await redis.aclose()

    made, listed, kept, indexed = asyncio.run(scenario())
    assert made == [True, True, False]
    assert listed == ["b", "a"] and kept == "first" and indexed == 2
