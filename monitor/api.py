"""Incidents over HTTP."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from redis.asyncio import Redis

from monitor.incidents import DriftIncident
from monitor.store import StreamStats, incidents


def get_redis(request: Request) -> Redis:
    return request.app.state.redis


RedisDep = Annotated[Redis, Depends(get_redis)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0)]

T = TypeVar("T")

router = APIRouter(prefix="/v1", tags=["incidents"])


def paginate(response: Response, total: int, limit: int, offset: int) -> None:
    """Pagination headers of a list endpoint: ``X-Total-Count`` and, when more follow, a ``Link`` to the next page."""
    response.headers["X-Total-Count"] = str(total)
    if offset + limit < total:
        response.headers["Link"] = f'<?limit={limit}&offset={offset + limit}>; rel="next"'


def found(item: T | None, kind: str, item_id: str) -> T:
    """``item``, or a 404 naming what was not found."""
    if item is None:
        raise HTTPException(404, f"no {kind} {item_id}")
    return item


@router.get("/incidents")
async def list_incidents(
    redis: RedisDep, response: Response, limit: Limit = 50, offset: Offset = 0
) -> list[DriftIncident]:
    """Incidents, newest first."""
    paginate(response, await incidents(redis).count(), limit, offset)
    return await incidents(redis).list(limit, offset)


@router.get("/incidents/{incident_id}")
async def get_incident(incident_id: str, redis: RedisDep) -> DriftIncident:
    return found(await incidents(redis).get(incident_id), "incident", incident_id)


@router.get("/stream")
async def stream_stats(redis: RedisDep) -> dict[str, int]:
    """Events accepted and rejected (by reason) since the stream began."""
    return await StreamStats(redis).read()
