"""The jobs agent's work, without Faust: a message of the incidents topic in, its generation job queued and
started in the worker's :class:`~feedback.pool.JobPool`."""

from __future__ import annotations

import logging

from pydantic import ValidationError

from feedback.jobs import GenerationJob
from feedback.pool import JobPool
from monitor.incidents import DriftIncident

log = logging.getLogger(__name__)


async def start_job(pool: JobPool, message: bytes, topic: str) -> list[GenerationJob]:
    """Queue the jobs of the incident in ``message`` (read from ``topic``), one per cause with a recipe, and start
    each in ``pool`` unless it is finished; returns the jobs as queued or found, without waiting for them to run.
    No job, with a log line, for a message that is not a :class:`~monitor.incidents.DriftIncident`, or for an
    incident whose causes have no recipe (on-call only)."""
    try:
        incident = DriftIncident.model_validate_json(message)
    except ValidationError as error:
        log.error("skipping a message on %s that is not a DriftIncident: %s", topic, error)
        return []
    queued = await pool.runner.accept(incident)
    if not queued:
        log.warning("incident %s (%s): no cause with a recipe, on-call only", incident.id, incident.kind)
    for job in queued:
        if not job.finished:
            pool.start(job.id)
    return queued
