"""Stress runs over HTTP: the last run of each suite that the workers' scheduled runs stored."""

from __future__ import annotations

from fastapi import APIRouter

from core.api import RedisDep, found, problem
from validation.results import RunSummary
from validation.scheduled import last_run, last_runs

router = APIRouter(prefix="/v1", tags=["stress"])


@router.get("/stress-runs")
async def list_stress_runs(redis: RedisDep) -> list[RunSummary]:
    """The last scheduled run of every suite, the latest first: pass and attack-success rates per family and
    segment with their Wilson intervals."""
    return await last_runs(redis)


@router.get("/stress-runs/{suite}", responses={404: problem("no run of this suite is stored")})
async def get_stress_run(suite: str, redis: RedisDep) -> RunSummary:
    """The last scheduled run of ``suite``."""
    return found(await last_run(redis, suite), "stress run of suite", suite)
