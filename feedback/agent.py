"""The jobs agent's work, without Faust: a message of the incidents topic in, its generation job queued and
started in the worker's :class:`~feedback.pool.JobPool`."""

from __future__ import annotations

import logging

from pydantic import ValidationError

from feedback.jobs import GenerationJob
from feedback.pool import JobPool
from monitor.incidents import DriftIncident

log = logging.getLogger(__name__)


async def start_job(pool: JobPool, message: bytes, topic: str) -> GenerationJob | None:
    """Queue the job of the incident in ``message`` (read from ``topic``) and start it in ``pool`` unless it is
    finished; returns the job as queued or found, without waiting for it to run. None, with a log line, for a
    message that is not a :class:`~monitor.incidents.DriftIncident`."""
    try:
        incident = DriftIncident.model_validate_json(message)
    except ValidationError as error:
        log.error("skipping a message on %s that is not a DriftIncident: %s", topic, error)
        return None
    job = await pool.runner.accept(incident)
    if not job.finished:
        pool.start(job.id)
    return job
