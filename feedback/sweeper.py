"""The job sweeper: re-runs unfinished jobs that no live lease covers.

Such a job's worker died (its lease lapsed while the job was ``running``) or its last attempt failed
(``queued`` again). Every worker sweeps on a timer; the lease decides which one runs the job.
"""

from __future__ import annotations

from core import keys
from feedback.jobs import GenerationJob
from feedback.leases import holder
from feedback.runner import JobRunner


async def sweep(runner: JobRunner) -> list[GenerationJob]:
    """Run one attempt of every unfinished job without a live lease; return those jobs as they ended up."""
    swept = []
    for raw in sorted(await runner.redis.smembers(keys.JOBS_ACTIVE)):
        job_id = raw.decode()
        if await holder(runner.redis, job_id) is None:
            swept.append(await runner.run(job_id))
    return swept
