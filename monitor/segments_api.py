"""Segments over HTTP: where each segment's monitor stands, and pinning its reference window.

A pin is recorded here and taken up by a worker (``monitor.references``); until then the segment's
reference shows ``applied: false``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Response
from pydantic import BaseModel, Field

from core.api import CurrentPrincipal, Limit, Offset, RedisDep, paginate, problem
from monitor.records import SegmentState, SegmentStatuses
from monitor.references import SEGMENT_PATTERN, Applied, ReferencePin, ReferencePins, TimeRange

router = APIRouter(prefix="/v1", tags=["segments"])
SegmentPath = Annotated[
    str,
    Path(pattern=SEGMENT_PATTERN, max_length=600, description="model/route/tenant", examples=["gpt-4o-mini/chat/acme"]),
]


class Reference(BaseModel):
    """A segment's reference window: rolling, or pinned to a time range."""

    mode: Literal["rolling", "pinned"]
    pin: ReferencePin | None = None
    applied: bool = Field(description="whether the worker has taken up this reference")
    events: int | None = Field(None, description="events of the pinned range the worker found")


class SegmentView(BaseModel):
    segment: str
    state: SegmentState | None = Field(description="quiet, drafting or open; null until a worker reports it")
    events: int = Field(description="events of the segment its monitor has seen")
    open_incident: str | None = None
    reference: Reference


def reference_of(segment: str, pin: ReferencePin | None, applied: Applied | None) -> Reference:
    if pin is None:
        return Reference(mode="rolling", applied=applied is None)
    taken_up = applied is not None and applied.pinned_at == pin.pinned_at
    return Reference(mode="pinned", pin=pin, applied=taken_up, events=applied.events if taken_up else None)


@router.get("/segments")
async def list_segments(
    redis: RedisDep, response: Response, limit: Limit = 50, offset: Offset = 0
) -> list[SegmentView]:
    """Every segment the workers reported or that has a pinned reference, by name."""
    statuses, pins = await SegmentStatuses(redis).all(), ReferencePins(redis)
    pinned, applied = await pins.all(), await pins.applied_all()
    names = sorted(statuses.keys() | pinned.keys())
    paginate(response, len(names), limit, offset)
    return [
        SegmentView(
            segment=name,
            state=statuses[name].state if name in statuses else None,
            events=statuses[name].events if name in statuses else 0,
            open_incident=statuses[name].open_incident if name in statuses else None,
            reference=reference_of(name, pinned.get(name), applied.get(name)),
        )
        for name in names[offset : offset + limit]
    ]


@router.put("/segments/{segment:path}/reference", responses={422: problem("not a segment, or not a past time range")})
async def pin_reference(
    segment: SegmentPath, window: TimeRange, redis: RedisDep, principal: CurrentPrincipal
) -> Reference:
    """Pin the segment's reference to the traffic of ``[from, to)`` (broker time), replacing an earlier pin.
    A worker reads the range back from the traffic topic and takes it up within seconds."""
    pin = ReferencePin(segment=segment, start=window.start, end=window.end, pinned_by=principal.name)
    await ReferencePins(redis).pin(pin)
    return reference_of(segment, pin, None)


@router.delete(
    "/segments/{segment:path}/reference",
    status_code=204,
    responses={404: problem("the segment's reference is not pinned")},
)
async def unpin_reference(segment: SegmentPath, redis: RedisDep) -> Response:
    """Return the segment to a rolling reference."""
    if not await ReferencePins(redis).unpin(segment):
        raise HTTPException(404, f"the reference of segment {segment} is not pinned")
    return Response(status_code=204)
