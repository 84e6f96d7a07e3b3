"""The jobs agent's work, without Faust: a message of the incidents topic in, its generation job run."""

from __future__ import annotations

import logging

from pydantic import ValidationError

from feedback.jobs import GenerationJob
from feedback.runner import JobRunner
from monitor.incidents import DriftIncident

log = logging.getLogger(__name__)


async def run_job(runner: JobRunner, message: bytes, topic: str) -> list[GenerationJob]:
    """Run the jobs of the incident in ``message`` (read from ``topic``), one per cause with a recipe; none, with a
    log line, for a message that is not a :class:`~monitor.incidents.DriftIncident`."""
    try:
        incident = DriftIncident.model_validate_json(message)
    except ValidationError as error:
        log.error("skipping a message on %s that is not a DriftIncident: %s", topic, error)
        return []
    done = await runner.handle(incident)
    for job in done:
        log.warning("job %s (%s) for incident %s: %s", job.id, job.recipe, job.incident_id, job.state)
    if not done:
        log.warning("incident %s (%s): no cause with a recipe, on-call only", incident.id, incident.kind)
    return done
