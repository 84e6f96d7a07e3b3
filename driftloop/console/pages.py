"""The console's pages (GET, scope ``read``): each calls the same functions as the API route it names."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, RedirectResponse

from core.api import Offset, RedisDep
from driftloop.console.render import base, page
from driftloop.console.session import PREFIX
from feedback import datasets_api, jobs_api, webhooks_api
from feedback.jobs import jobs
from feedback.publishing import publications
from feedback.registry import AckStore
from monitor import api as monitor_api
from monitor.incident_builder import causes as incident_causes
from monitor.incidents import Cause, DriftIncident, FeatureShift, IncidentStatus
from validation import api as validation_api

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE_SIZE = 50
STYLESHEET = Path(__file__).parent / "static" / "console.css"


@router.get("/console.css")
async def stylesheet() -> FileResponse:
    return FileResponse(STYLESHEET, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.get("")
async def home(request: Request) -> RedirectResponse:
    return RedirectResponse(base(request) + "/incidents", status_code=303)


def _total(response: Response) -> int:
    return int(response.headers["X-Total-Count"])


@router.get("/incidents")
async def incidents_page(
    request: Request,
    redis: RedisDep,
    status: str = "",
    segment: str = "",
    offset: Offset = 0,
) -> Response:
    """The filter form sends empty fields for "any"."""
    status, segment = IncidentStatus(status) if status else None, segment or None
    listed = Response()
    found = await monitor_api.list_incidents(redis, listed, status, segment, PAGE_SIZE, offset)
    query = "&".join(f"{k}={v}" for k, v in (("status", status), ("segment", segment)) if v)
    return page(
        request,
        "incidents.html",
        [f"GET /v1/incidents{'?' + query if query else ''}"],
        incidents=found,
        statuses=list(IncidentStatus),
        status=status,
        segment=segment or "",
        offset=offset,
        total=_total(listed),
        page_size=PAGE_SIZE,
    )


def causes(incident: DriftIncident) -> list[tuple[Cause, list[FeatureShift]]]:
    """Each cause the incident names, most urgent first, with the shifts of its features measured at opening (a
    cause added later has none); an incident stored without causes gets those its moved features signal."""
    named = incident.causes or incident_causes(incident.features, incident.detected_after_events)
    return [(cause, [s for s in incident.features if s.feature in cause.features]) for cause in named]


@router.get("/incidents/{incident_id}")
async def incident_page(incident_id: str, request: Request, redis: RedisDep) -> Response:
    incident = await monitor_api.get_incident(incident_id, redis)
    changes = await monitor_api.list_status_changes(incident_id, redis)
    its_jobs = [job for job in await jobs(redis).list(limit=500) if job.incident_id == incident_id]
    return page(
        request,
        "incident.html",
        [f"GET /v1/incidents/{incident_id}", f"GET /v1/incidents/{incident_id}/changes", "GET /v1/jobs"],
        incident=incident,
        causes=causes(incident),
        changes=changes,
        jobs=its_jobs,
    )


@router.get("/incidents/{incident_id}/report")
async def incident_report(incident_id: str, redis: RedisDep) -> Response:
    """The Evidently report, served as the API serves it (sandboxed)."""
    return await monitor_api.get_incident_report(incident_id, redis)


@router.get("/jobs")
async def jobs_page(request: Request, redis: RedisDep, offset: Offset = 0) -> Response:
    listed = Response()
    found = await jobs_api.list_jobs(redis, listed, PAGE_SIZE, offset)
    return page(
        request,
        "jobs.html",
        ["GET /v1/jobs"],
        jobs=found,
        offset=offset,
        total=_total(listed),
        page_size=PAGE_SIZE,
    )


@router.get("/datasets")
async def datasets_page(request: Request, redis: RedisDep, offset: Offset = 0) -> Response:
    listed = Response()
    found = await datasets_api.list_datasets(redis, listed, None, None, None, None, None, PAGE_SIZE, offset)
    held = [await publications(redis).get(manifest.id) for manifest in found]
    states = {publication.id: publication.state for publication in held if publication}
    return page(
        request,
        "datasets.html",
        ["GET /v1/datasets", "GET /v1/datasets/{id}/publication"],
        datasets=found,
        states=states,
        offset=offset,
        total=_total(listed),
        page_size=PAGE_SIZE,
    )


@router.get("/datasets/{dataset_id}")
async def dataset_page(dataset_id: str, request: Request, redis: RedisDep) -> Response:
    manifest = await datasets_api.get_dataset(dataset_id, redis)
    return page(
        request,
        "dataset.html",
        [f"GET /v1/datasets/{dataset_id}", f"GET /v1/datasets/{dataset_id}/publication"],
        dataset=manifest,
        publication=await publications(redis).get(dataset_id),
        ack=await AckStore(redis).get(dataset_id),
    )


@router.get("/datasets/{dataset_id}/quality.html")
async def quality_card(dataset_id: str, redis: RedisDep) -> Response:
    """The quality card, served as the API serves it (no script)."""
    return await datasets_api.get_quality_card(dataset_id, redis)


@router.get("/datasets/{dataset_id}/files/{name:path}")
async def dataset_file(dataset_id: str, name: str, redis: RedisDep) -> Response:
    """A file of the version, checked against its sha256 as the API does."""
    return await datasets_api.download_dataset_file(dataset_id, name, redis)


@router.get("/webhooks")
async def webhooks_page(request: Request, redis: RedisDep) -> Response:
    letters = await webhooks_api.list_dead_letters(redis, Response(), None, PAGE_SIZE, 0)
    return page(
        request,
        "webhooks.html",
        ["GET /v1/webhooks", "GET /v1/webhooks/deliveries", "GET /v1/webhooks/dead-letters"],
        webhooks=await webhooks_api.list_webhooks(redis),
        deliveries=await webhooks_api.list_deliveries(redis, PAGE_SIZE),
        letters=letters,
    )


@router.get("/stress")
async def stress_page(request: Request, redis: RedisDep) -> Response:
    return page(request, "stress.html", ["GET /v1/stress-runs"], runs=await validation_api.list_stress_runs(redis))
