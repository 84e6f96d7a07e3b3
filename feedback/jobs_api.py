"""Generation jobs over HTTP."""

from __future__ import annotations

from fastapi import APIRouter, Response

from feedback.jobs import GenerationJob
from feedback.runner import jobs
from monitor.api import Limit, Offset, RedisDep, found, paginate

router = APIRouter(prefix="/v1", tags=["jobs"])


@router.get("/jobs")
async def list_jobs(redis: RedisDep, response: Response, limit: Limit = 50, offset: Offset = 0) -> list[GenerationJob]:
    """Jobs, newest first."""
    paginate(response, await jobs(redis).count(), limit, offset)
    return await jobs(redis).list(limit, offset)


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, redis: RedisDep) -> GenerationJob:
    return found(await jobs(redis).get(job_id), "job", job_id)
