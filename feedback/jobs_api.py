"""Generation jobs over HTTP: run a recipe by hand, list, detail, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from core.api import Limit, Offset, RedisDep, found, list_page
from feedback.deps import get_settings
from feedback.jobs import GenerationJob, JobState, ManualJob, cancel, jobs, load, submit_manual
from generators.recipes import RecipeBook, load_recipes

router = APIRouter(prefix="/v1", tags=["jobs"])


def get_recipes(request: Request) -> RecipeBook:
    """The recipe book of ``recipes_path``, read per request so that edits apply without a restart (an invalid
    file is a ``RecipeError``: a 500 whose reason goes to the log)."""
    return load_recipes(get_settings(request).recipes_path)


RecipesDep = Annotated[RecipeBook, Depends(get_recipes)]


@router.post(
    "/jobs",
    status_code=202,
    responses={422: {"description": "unknown recipe (the detail lists the known ones), or no input to work on"}},
)
async def create_job(request: ManualJob, redis: RedisDep, recipes: RecipesDep) -> GenerationJob:
    """Run a recipe by hand on example prompts (redacted before they are stored) or, without prompts, on the
    evidence of the segment's latest incident. The request becomes an incident of kind ``manual`` and a queued
    job that the workers run within ``job_sweep_interval_s``; the same request names the same job."""
    return await submit_manual(redis, request, recipes)


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
    job = found(await cancel(redis, job_id), "job", job_id)
    if job.state != JobState.CANCELLED:
        response.status_code = 202
    return job
