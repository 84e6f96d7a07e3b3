"""Incidents over HTTP: list and detail, the lifecycle (acknowledge, resolve), its log, and the report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Depends, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from core.api import CurrentPrincipal, Limit, Offset, RedisDep, found, list_page, problem
from monitor.incidents import DriftIncident, IncidentStatus
from monitor.lifecycle import NOTE_MAX_CHARS, EventDispatcher, StatusChange, change_status, status_changes, status_event
from monitor.records import StreamStats, incidents
from monitor.reports import load_report

REPORT_HEADERS = {"Content-Security-Policy": "sandbox allow-scripts", "X-Content-Type-Options": "nosniff"}
"""The report runs Evidently's scripts over traffic text: sandboxed, it gets an opaque origin, not the API's."""


router = APIRouter(prefix="/v1", tags=["incidents"])


def get_event_dispatcher(request: Request) -> EventDispatcher:
    """The webhook dispatcher the assembled API put in ``app.state.event_dispatcher``."""
    return request.app.state.event_dispatcher


DispatcherDep = Annotated[EventDispatcher, Depends(get_event_dispatcher)]


class StatusNote(BaseModel):
    """Why an incident changes status; kept in its change log and sent with the webhook."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"note": "rate limit on the jailbreak source deployed"}]}
    )

    note: str | None = Field(None, max_length=NOTE_MAX_CHARS)


NoteBody = Annotated[StatusNote | None, Body()]


@router.get("/incidents")
async def list_incidents(
    redis: RedisDep,
    response: Response,
    status: IncidentStatus | None = None,
    segment: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[DriftIncident]:
    """Incidents, newest first; ``status=open`` for those nobody has acknowledged or resolved yet,
    ``segment`` for one segment's."""
    if status is None and segment is None:
        return await list_page(incidents(redis), response, limit, offset)

    def keep(incident: DriftIncident) -> bool:
        return (status is None or incident.status == status) and (segment is None or incident.segment == segment)

    return await list_page(incidents(redis), response, limit, offset, keep)


@router.get("/incidents/{incident_id}")
async def get_incident(incident_id: str, redis: RedisDep) -> DriftIncident:
    return found(await incidents(redis).get(incident_id), "incident", incident_id)


class Move:
    """What a status change needs besides its target: the store, who asks, and where to announce it."""

    def __init__(
        self, redis: RedisDep, principal: CurrentPrincipal, dispatcher: DispatcherDep, background: BackgroundTasks
    ) -> None:
        self.redis, self.principal, self.dispatcher, self.background = redis, principal, dispatcher, background

    async def __call__(self, incident_id: str, to: IncidentStatus, body: StatusNote | None) -> DriftIncident:
        """Change the status, then announce it (``incident.<status>`` webhooks) after the response."""
        note = body.note if body else None
        moved = await change_status(self.redis, incident_id, to, self.principal.name, note)
        incident, change = found(moved, "incident", incident_id)
        self.background.add_task(self.dispatcher.dispatch, *status_event(incident, change))
        return incident


MoveDep = Annotated[Move, Depends()]


TRANSITION_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: problem("no such incident"),
    409: problem("the lifecycle does not allow this change (e.g. acknowledging a resolved incident)"),
}


@router.post("/incidents/{incident_id}/acknowledge", responses=TRANSITION_RESPONSES)
async def acknowledge_incident(incident_id: str, move: MoveDep, body: NoteBody = None) -> DriftIncident:
    """Someone is on it: open → acknowledged, announced as ``incident.acknowledged``. Acknowledging again
    changes nothing; 409 once the incident is resolved."""
    return await move(incident_id, IncidentStatus.ACKNOWLEDGED, body)


@router.post("/incidents/{incident_id}/resolve", responses=TRANSITION_RESPONSES)
async def resolve_incident(incident_id: str, move: MoveDep, body: NoteBody = None) -> DriftIncident:
    """Close it: open or acknowledged → resolved, announced as ``incident.resolved``. Resolving again (or
    after the monitor resolved it when the segment returned to its reference) changes nothing."""
    return await move(incident_id, IncidentStatus.RESOLVED, body)


@router.get("/incidents/{incident_id}/changes", responses={404: problem("no such incident")})
async def list_status_changes(incident_id: str, redis: RedisDep) -> list[StatusChange]:
    """The incident's status changes, oldest first: who, when, and their note."""
    found(await incidents(redis).get(incident_id), "incident", incident_id)
    return await status_changes(redis, incident_id)


@router.get(
    "/incidents/{incident_id}/report",
    response_class=HTMLResponse,
    responses={
        200: {"description": "the Evidently report, a standalone HTML page", "content": {"text/html": {}}},
        404: problem("no such incident, or its report is not rendered yet"),
    },
)
async def get_incident_report(incident_id: str, redis: RedisDep) -> HTMLResponse:
    """The incident's Evidently report: its segment's reference window against the drifted window (numeric
    features, prompt text and its descriptors, prompt embeddings). The worker renders it after the
    incident opens, so it can be missing for a few seconds."""
    found(await incidents(redis).get(incident_id), "incident", incident_id)
    html = await load_report(redis, incident_id)
    if html is None:
        raise HTTPException(404, f"the report of incident {incident_id} is not rendered yet")
    return HTMLResponse(html, headers=REPORT_HEADERS)


@router.get("/stream")
async def stream_stats(redis: RedisDep) -> dict[str, int]:
    """Events accepted and rejected (by reason) since the stream began."""
    return await StreamStats(redis).read()
