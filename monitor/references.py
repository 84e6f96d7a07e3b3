"""Pinned reference windows: the API records a pin per segment in Redis, the worker applies it.

A pin is a time range of the traffic topic. The worker polls :meth:`ReferencePins.pending`, reads the
range's events of the segment back from the broker with :func:`fetch_range` (in a thread: kafka-python
blocks), hands them to the segment's monitor, and confirms with :meth:`ReferencePins.applied`. Deleting
a pin returns the segment to a rolling reference, which the worker confirms with
:meth:`ReferencePins.released`. Both the pins and what was applied live in Redis, so they survive restarts
of the API and the workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from kafka import KafkaConsumer, TopicPartition
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from redis.asyncio import Redis

from core import keys
from monitor.events import InvalidEvent, TrafficEvent, parse_event

SEGMENT_PATTERN = r"^[^/\s]+(/[^/\s]+)*/[^/\s]+/[^/\s]+$"
"""``model/route/tenant``; a model name may hold slashes itself (``meta-llama/Llama-3.1-8B``)."""


class TimeRange(BaseModel):
    """A closed-open range ``[from, to)`` of broker (record) time, which has ended."""

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={"examples": [{"from": "2025-06-02T08:00:00Z", "to": "2025-06-02T20:00:00Z"}]},
    )

    start: AwareDatetime = Field(alias="from", description="first instant of the range (with a time zone)")
    end: AwareDatetime = Field(alias="to", description="end of the range, excluded; not in the future")

    @model_validator(mode="after")
    def _ordered_and_past(self) -> TimeRange:
        if self.start >= self.end:
            raise ValueError("'from' must be before 'to'")
        if self.end > datetime.now(UTC):
            raise ValueError("'to' is in the future: a reference is pinned from traffic already seen")
        return self


class ReferencePin(TimeRange):
    """A segment's pinned reference range, as the API recorded it."""

    segment: str
    pinned_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    pinned_by: str = Field(description="token name of who pinned it")


class Applied(BaseModel):
    """What the worker applied for a segment: the pin (by ``pinned_at``) and how many events it found."""

    pinned_at: datetime
    events: int
    applied_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class ReferenceChange:
    """A segment whose monitor has to take up ``pin``, or return to a rolling reference (``pin`` None)."""

    segment: str
    pin: ReferencePin | None


class ReferencePins:
    """Pins (``reference-pins``: segment → pin) and what workers applied (``reference-applied``)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def pin(self, pin: ReferencePin) -> None:
        """Record ``pin``, replacing the segment's earlier one."""
        await self.redis.hset(keys.REFERENCE_PINS, pin.segment, pin.model_dump_json())

    async def unpin(self, segment: str) -> bool:
        """Return ``segment`` to a rolling reference; False when it had no pin."""
        return bool(await self.redis.hdel(keys.REFERENCE_PINS, segment))

    async def all(self) -> dict[str, ReferencePin]:
        return {
            k.decode(): ReferencePin.model_validate_json(v)
            for k, v in (await self.redis.hgetall(keys.REFERENCE_PINS)).items()
        }

    async def applied_all(self) -> dict[str, Applied]:
        return {
            k.decode(): Applied.model_validate_json(v)
            for k, v in (await self.redis.hgetall(keys.REFERENCE_APPLIED)).items()
        }

    async def pending(self) -> list[ReferenceChange]:
        """Pins not applied yet (or replaced since), and released pins whose segment still uses them."""
        pins, applied = await self.all(), await self.applied_all()
        changes = [
            ReferenceChange(segment, pin)
            for segment, pin in pins.items()
            if segment not in applied or applied[segment].pinned_at != pin.pinned_at
        ]
        return changes + [ReferenceChange(segment, None) for segment in applied.keys() - pins.keys()]

    async def applied(self, pin: ReferencePin, events: int) -> None:
        """The worker took up ``pin`` with ``events`` events of its range."""
        await self.redis.hset(
            keys.REFERENCE_APPLIED, pin.segment, Applied(pinned_at=pin.pinned_at, events=events).model_dump_json()
        )

    async def released(self, segment: str) -> None:
        """The worker returned ``segment`` to a rolling reference."""
        await self.redis.hdel(keys.REFERENCE_APPLIED, segment)


def fetch_range(
    bootstrap: str, topic: str, segment: str, start: datetime, end: datetime, limit: int = 5000, idle_ms: int = 1500
) -> list[TrafficEvent]:
    """The events of ``segment`` whose broker timestamp lies in ``[start, end)``, oldest first, at most ``limit``.

    Seeks each partition of ``topic`` to ``start`` with ``offsets_for_times`` and reads until a record at or
    after ``end``, the end of the partition (no record for ``idle_ms``) or ``limit`` events. Records are
    filtered by timestamp too, so a broker that answers ``offsets_for_times`` with the log start still
    gives the right events. Records that do not parse as events are skipped (the worker dead-lettered them).
    Blocking: call it in a thread from async code.
    """
    if start >= end:
        raise ValueError("start must be before end")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        offsets = consumer.offsets_for_times(dict.fromkeys(partitions, start_ms)) if partitions else {}
        reading = {tp for tp, found in offsets.items() if found is not None}
        consumer.assign(sorted(reading, key=lambda tp: tp.partition))
        for tp in reading:
            consumer.seek(tp, offsets[tp].offset)
        events: list[TrafficEvent] = []
        while reading and len(events) < limit:
            batches = consumer.poll(timeout_ms=idle_ms)
            if not batches:
                break
            for tp, records in batches.items():
                for record in records:
                    if record.timestamp >= end_ms:
                        reading.discard(tp)
                        consumer.pause(tp)
                        break
                    event = _event(record.value) if record.timestamp >= start_ms else None
                    if event is not None and event.segment == segment:
                        events.append(event)
        return events[:limit]
    finally:
        consumer.close()


def _event(raw: bytes | None) -> TrafficEvent | None:
    try:
        return parse_event(raw or b"")
    except InvalidEvent:
        return None
