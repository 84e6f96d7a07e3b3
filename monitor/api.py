"""Incidents over HTTP."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from redis.asyncio import Redis

from monitor.incidents import DriftIncident
from monitor.store import StreamStats, incidents


def get_redis(request: Request) -> Redis:
    return request.app.state.redis


RedisDep = Annotated[Redis, Depends(get_redis)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0)]

router = APIRouter(prefix="/v1", tags=["incidents"])


@router.get("/incidents")
async def list_incidents(redis: RedisDep, limit: Limit = 50, offset: Offset = 0) -> list[DriftIncident]:
    """Incidents, newest first."""
    return await incidents(redis).list(limit, offset)


@router.get("/incidents/{incident_id}")
async def get_incident(incident_id: str, redis: RedisDep) -> DriftIncident:
    found = await incidents(redis).get(incident_id)
    if found is None:
        raise HTTPException(404, f"no incident {incident_id}")
    return found


@router.get("/stream")
async def stream_stats(redis: RedisDep) -> dict[str, int]:
    """Events accepted and rejected (by reason) since the stream began."""
    return await StreamStats(redis).read()
