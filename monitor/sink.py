"""The incident sink: where every incident source (the stream's monitors, stress regressions, manual jobs) puts
its incidents, so that each is stored once, published, counted and logged the same way.

A cause the monitor adds to an open incident (:meth:`IncidentSink.add_cause`) updates the stored incident and
publishes it again, with the same id: consumers start the jobs of causes they have not seen.

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

from monitor.incidents import Cause, CauseAdded, DriftIncident, IncidentStatus
from monitor.records import incidents

log = logging.getLogger(__name__)

Publish = Callable[[DriftIncident], Awaitable[None]]
"""Sends an incident on to its consumers (the worker's: onto ``driftloop.incidents``)."""


class IncidentSink:
    """Stores each incident once, then publishes it through ``publish`` and counts new ones in ``opened``.

    A source without ``publish`` only stores: the API's manual jobs, which queue their job themselves. One
    without ``opened`` counts nothing: a process that exports no monitor metrics (the API).
    """

    def __init__(
        self, redis: Redis, publish: Publish | None = None, opened: Counter | None = None, causes: Counter | None = None
    ) -> None:
        self.redis, self.publish, self.opened, self.causes = redis, publish, opened, causes

    async def emit(self, incident: DriftIncident) -> bool:
        """Store, publish, count and log ``incident``; whether it was new (False: stored before, so only
        published again)."""
        new = await incidents(self.redis).create(incident)
        if self.publish is not None:
            await self.publish(incident)
        if new:
            if self.opened is not None:
                self.opened.labels(incident.kind, incident.severity).inc()
            self._count(incident.causes)
            log.warning("incident %s: %s", incident.id, incident.headline)
        return new

    async def add_cause(self, added: CauseAdded) -> DriftIncident | None:
        """Name ``added.cause`` on its stored incident and publish the incident again (its consumers start the new
        cause's job); a cause of that kind named before is only published again. None when the incident is not
        stored or was resolved by hand meanwhile."""
        new = False

        def name(incident: DriftIncident) -> DriftIncident:
            nonlocal new
            new = incident.status != IncidentStatus.RESOLVED and all(
                c.kind != added.cause.kind for c in incident.causes
            )
            return incident.with_cause(added.cause) if new else incident

        incident = await incidents(self.redis).update(added.incident_id, name)
        if incident is None or incident.status == IncidentStatus.RESOLVED:
            return None
        if self.publish is not None:
            await self.publish(incident)
        if new:
            self._count([added.cause])
            log.warning(
                "incident %s: cause added: %s (%s)", incident.id, added.cause.kind, ", ".join(added.cause.features)
            )
        return incident

    def _count(self, causes: list[Cause]) -> None:
        if self.causes is not None:
            for cause in causes:
                self.causes.labels(cause.kind, cause.severity).inc()
