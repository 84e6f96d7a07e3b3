"""Incidents over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel
from redis.asyncio import Redis

from monitor.incidents import DriftIncident
from monitor.store import Collection, StreamStats, incidents


def get_redis(request: Request) -> Redis:
    return request.app.state.redis


RedisDep = Annotated[Redis, Depends(get_redis)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0)]

T = TypeVar("T")
R = TypeVar("R", bound=BaseModel)
FILTER_SCAN = 10_000
"""Most records a filtered list looks at (filters scan; Redis keeps no secondary indexes)."""

router = APIRouter(prefix="/v1", tags=["incidents"])


def paginate(response: Response, total: int, limit: int, offset: int) -> None:
    """Pagination headers of a list endpoint: ``X-Total-Count`` and, when more follow, a ``Link`` to the next page."""
    response.headers["X-Total-Count"] = str(total)
    if offset + limit < total:
        response.headers["Link"] = f'<?limit={limit}&offset={offset + limit}>; rel="next"'


async def list_page(
    collection: Collection[R], response: Response, limit: int, offset: int, keep: Callable[[R], bool] | None = None
) -> list[R]:
    """One page of ``collection``, newest first, optionally only records that ``keep`` accepts, with headers."""
    if keep is None:
        paginate(response, await collection.count(), limit, offset)
        return await collection.list(limit, offset)
    matching = [record for record in await collection.list(limit=FILTER_SCAN) if keep(record)]
    paginate(response, len(matching), limit, offset)
    return matching[offset : offset + limit]


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
    return await list_page(incidents(redis), response, limit, offset)


@router.get("/incidents/{incident_id}")
async def get_incident(incident_id: str, redis: RedisDep) -> DriftIncident:
    return found(await incidents(redis).get(incident_id), "incident", incident_id)


@router.get("/stream")
async def stream_stats(redis: RedisDep) -> dict[str, int]:
    """Events accepted and rejected (by reason) since the stream began."""
    return await StreamStats(redis).read()
