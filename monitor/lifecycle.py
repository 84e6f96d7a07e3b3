"""Changing an incident's status in Redis: atomically, idempotently, with who and why kept in a log.

``change_status`` is the one way the API (acknowledge, resolve) and the worker (auto-resolve) move an
incident; ``status_event`` is the webhook event a change announces. A change is keyed by incident and
status, so repeating it, or resolving by hand an incident the monitor resolved, announces it once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from core import keys
from monitor.incidents import DriftIncident, IncidentStatus, transition
from monitor.records import incidents

NOTE_MAX_CHARS = 2000


class StatusChange(BaseModel):
    """One move of an incident's lifecycle."""

    status: IncidentStatus
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    by: str = Field(description="token name of who made it, or 'monitor' for the stream's auto-resolve")
    note: str | None = Field(None, max_length=NOTE_MAX_CHARS)


class EventDispatcher(Protocol):
    """What announces a change: ``feedback.webhooks.Dispatcher`` (monitor does not import feedback)."""

    async def dispatch(self, event_type: str, message_id: str, data: dict) -> Any: ...


async def status_changes(redis: Redis, incident_id: str) -> list[StatusChange]:
    """The changes of an incident, oldest first."""
    return [
        StatusChange.model_validate_json(raw) for raw in await redis.lrange(keys.incident_changes(incident_id), 0, -1)
    ]


async def change_status(
    redis: Redis, incident_id: str, to: IncidentStatus, by: str, note: str | None = None
) -> tuple[DriftIncident, StatusChange] | None:
    """Move the incident to ``to``; None when there is no such incident.

    Returns the incident and the change that brought it to ``to``: a new one, or the logged one when it
    was there already (repeating a change is a no-op). Raises ``InvalidTransition`` when the lifecycle
    forbids the move.
    """
    change = StatusChange(status=to, by=by, note=note)
    moved = False

    def move(incident: DriftIncident) -> DriftIncident:
        nonlocal moved
        moved = incident.status != to
        return transition(incident, to, at=change.at) if moved else incident

    incident = await incidents(redis).update(incident_id, move)
    if incident is None:
        return None
    if moved:
        await redis.rpush(keys.incident_changes(incident_id), change.model_dump_json())
        return incident, change
    earlier = [c for c in await status_changes(redis, incident_id) if c.status == to]
    return incident, earlier[-1] if earlier else change


def status_event(incident: DriftIncident, change: StatusChange) -> tuple[str, str, dict]:
    """The webhook event of a change: (type ``incident.<status>``, message id, data: the incident and the change)."""
    data = {**incident.model_dump(mode="json"), "change": change.model_dump(mode="json")}
    return f"incident.{change.status}", f"{incident.id}.{change.status}", data
