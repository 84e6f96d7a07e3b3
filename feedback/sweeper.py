"""The job sweeper: re-runs unfinished jobs that no live lease covers.

Such a job's worker died (its lease lapsed while the job was ``running``), its last attempt failed (``queued``
again), or it waits for a slot on a busy worker. Every worker sweeps on a timer into its own
:class:`~feedback.pool.JobPool`; the lease decides which one runs the job.
"""

from __future__ import annotations

import asyncio

from core import keys
from feedback.jobs import GenerationJob
from feedback.leases import holder
from feedback.pool import JobPool


async def sweep(pool: JobPool) -> list[asyncio.Task[GenerationJob | None]]:
    """Start, in ``pool``, one attempt of every unfinished job that no live lease covers and that ``pool`` does not
    hold already; the tasks started (each returns its job as it ended)."""
    redis = pool.runner.redis
    started = []
    for raw in sorted(await redis.smembers(keys.JOBS_ACTIVE)):
        job_id = raw.decode()
        if job_id not in pool and await holder(redis, job_id) is None:
            started.append(pool.start(job_id))
    return started
