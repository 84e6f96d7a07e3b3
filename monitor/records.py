"""monitor's records in the store: incidents, the stream's counters and each segment's status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from core import keys
from core.store import Collection
from monitor.incidents import DriftIncident


class StreamStats:
    """Counts of the traffic stream that outlive a worker: events accepted, which are the events in the segments'
    detector state (summed from their statuses, so exact however often a batch is redelivered after a crash), and
    records rejected, by reason (at least once: a record dead-lettered just before a crash is dead-lettered again
    when it is redelivered)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def rejected(self, reason: str) -> None:
        await self.redis.hincrby(keys.STREAM_COUNTS, f"rejected:{reason}", 1)

    async def read(self) -> dict[str, int]:
        counts = {k.decode(): int(v) for k, v in (await self.redis.hgetall(keys.STREAM_COUNTS)).items()}
        statuses = await SegmentStatuses(self.redis).all()
        return {**counts, "accepted": sum(status.events for status in statuses.values())}


def incidents(redis: Redis) -> Collection[DriftIncident]:
    """The incident records, newest first."""
    return Collection(redis, keys.INCIDENT, DriftIncident, time_field="detected_at")


SegmentState = Literal["reference", "quiet", "drafting", "open"]


class SegmentStatus(BaseModel):
    """Where a segment's monitor stands, as its worker last reported it."""

    segment: str
    state: SegmentState = Field(
        description="reference (collecting it), quiet, drafting (a warning collects evidence) or open"
    )
    events: int = Field(ge=0, description="events of the segment the monitor has seen")
    open_incident: str | None = None
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class SegmentStatuses:
    """The latest :class:`SegmentStatus` of every segment, in one Redis hash (segment → JSON)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def record(self, statuses: list[SegmentStatus]) -> None:
        """Record ``statuses`` (one round trip)."""
        if statuses:
            mapping = {status.segment: status.model_dump_json() for status in statuses}
            await self.redis.hset(keys.SEGMENT_STATUSES, mapping=mapping)

    async def all(self) -> dict[str, SegmentStatus]:
        """Segment → its status."""
        raws = await self.redis.hgetall(keys.SEGMENT_STATUSES)
        return {k.decode(): SegmentStatus.model_validate_json(v) for k, v in raws.items()}
