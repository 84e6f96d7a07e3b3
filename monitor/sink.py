"""The incident sink: where every incident source (the stream's monitors, stress regressions, manual jobs) puts
its incidents, so that each is stored once, published, counted and logged the same way.

Storing comes first and is guarded (``SET NX`` on the incident id): an incident emitted again stores nothing new
and is neither counted nor logged again. It is published again, though: a source that died between storing and
publishing completes the publication when it retries, and whoever consumes incidents is idempotent by incident
id (one job per incident, one ``incident.opened`` delivery per webhook).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from prometheus_client import Counter
from redis.asyncio import Redis

from monitor.incidents import DriftIncident
from monitor.records import incidents

log = logging.getLogger(__name__)

Publish = Callable[[DriftIncident], Awaitable[None]]
"""Sends an incident on to its consumers (the worker's: onto ``driftloop.incidents``)."""


class IncidentSink:
    """Stores each incident once, then publishes it through ``publish`` and counts new ones in ``opened``.

    A source without ``publish`` only stores: the API's manual jobs, which queue their job themselves. One
    without ``opened`` counts nothing: a process that exports no monitor metrics (the API).
    """

    def __init__(self, redis: Redis, publish: Publish | None = None, opened: Counter | None = None) -> None:
        self.redis, self.publish, self.opened = redis, publish, opened

    async def emit(self, incident: DriftIncident) -> bool:
        """Store, publish, count and log ``incident``; whether it was new (False: stored before, so only
        published again)."""
        new = await incidents(self.redis).create(incident)
        if self.publish is not None:
            await self.publish(incident)
        if new:
            if self.opened is not None:
                self.opened.labels(incident.kind, incident.severity).inc()
            log.warning("incident %s: %s", incident.id, incident.headline)
        return new
