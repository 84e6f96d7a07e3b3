"""Generation jobs over HTTP: list, detail, cancel."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from feedback.jobs import GenerationJob, JobFinished, JobState, cancel, jobs, load
from monitor.api import Limit, Offset, RedisDep, found, list_page

router = APIRouter(prefix="/v1", tags=["jobs"])


@router.get("/jobs")
async def list_jobs(redis: RedisDep, response: Response, limit: Limit = 50, offset: Offset = 0) -> list[GenerationJob]:
    """Jobs, newest first."""
    return await list_page(jobs(redis), response, limit, offset)


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, redis: RedisDep) -> GenerationJob:
    return found(await load(redis, job_id), "job", job_id)


@router.post("/jobs/{job_id}/cancel", responses={202: {"description": "cancellation requested; the worker stops"}})
async def cancel_job(job_id: str, redis: RedisDep, response: Response) -> GenerationJob:
    """Cancel a job. 200 with the cancelled job when no worker was running it; 202 with
    ``cancel_requested`` when one is: it stops before publishing. 409 when the job already ended."""
    try:
        job = found(await cancel(redis, job_id), "job", job_id)
    except JobFinished as exc:
        raise HTTPException(409, str(exc)) from exc
    if job.state != JobState.CANCELLED:
        response.status_code = 202
    return job
