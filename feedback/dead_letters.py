"""Webhook messages given up after their last retry, kept in Redis for an operator to list and replay.

One entry per (webhook, message): a message that fails again for the same receiver updates its entry.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from core import keys
from core.errors import Conflict
from core.store import Collection

DEAD_LETTER_NAMESPACE = uuid.UUID("a3d9e7c4-61b2-4f0e-8c5a-2b7f9d1e4c38")


class DeadLetterState(StrEnum):
    DEAD = "dead"
    REPLAYED = "replayed"


class DeadLetter(BaseModel):
    id: str
    webhook_id: str
    message_id: str
    event_type: str
    payload: dict = Field(description="the body that was sent: type, timestamp, data")
    attempts: int
    last_error: str | None
    at: datetime = Field(default_factory=lambda: datetime.now(UTC), description="when it was given up")
    state: DeadLetterState = DeadLetterState.DEAD
    replayed_at: datetime | None = None


class ReplayRefused(Conflict, RuntimeError):
    """A dead letter that cannot be replayed now: already replayed, being replayed, or its webhook is gone."""

    def __init__(self, letter_id: str, reason: str) -> None:
        self.letter_id, self.reason = letter_id, reason
        super().__init__(f"dead letter {letter_id}: {reason}")


def dead_letter_id(webhook_id: str, message_id: str) -> str:
    return "dl-" + uuid.uuid5(DEAD_LETTER_NAMESPACE, f"{webhook_id}:{message_id}").hex[:16]


def dead_letters(redis: Redis) -> Collection[DeadLetter]:
    """Dead letters, newest first."""
    return Collection(redis, keys.DEAD_LETTER, DeadLetter, time_field="at")


async def bury(redis: Redis, letter: DeadLetter) -> DeadLetter:
    """Record ``letter``, or update the entry of the same webhook and message."""
    if not await dead_letters(redis).create(letter):
        await dead_letters(redis).save(letter)
    return letter


async def is_dead(redis: Redis, webhook_id: str, message_id: str) -> bool:
    """Whether this webhook's copy of the message waits in the dead letters (so dispatch leaves it alone)."""
    letter = await dead_letters(redis).get(dead_letter_id(webhook_id, message_id))
    return letter is not None and letter.state == DeadLetterState.DEAD
