"""The console's forms: logging in and out (open), and the actions (POST, scope ``operate``, CSRF-checked), each
through the same function as the API route it names; the outcome is shown on the page it returns to."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, HTTPException, Request, Response
from fastapi.responses import RedirectResponse

from core.api import RedisDep
from core.errors import Conflict, Unavailable
from driftloop.console.render import CsrfChecked, back, base, page
from driftloop.console.session import LOGIN, PREFIX, clear_session, set_session
from feedback import jobs_api, publish_api, webhooks_api
from feedback.deps import DispatcherDep, PublisherDep
from monitor.api import MoveDep, StatusNote
from monitor.incidents import IncidentStatus
from monitor.lifecycle import NOTE_MAX_CHARS

router = APIRouter(prefix=PREFIX, include_in_schema=False)
LOGOUT = f"{PREFIX}/logout"
OPEN_PATHS = frozenset({LOGIN, LOGOUT, f"{PREFIX}/console.css"})
"""Console paths served without a token."""
Note = Annotated[str, Form(max_length=NOTE_MAX_CHARS)]


@router.get("/login")
async def login_form(request: Request, next: str = "") -> Response:
    return page(request, "login.html", ["GET /v1/whoami"], next=next, error="")


@router.post("/login")
async def login(
    request: Request, redis: RedisDep, token: Annotated[str, Form(max_length=200)], next: Annotated[str, Form()] = ""
) -> Response:
    """Check the token as the API would, then keep it in the session cookie. A login posted from another site
    (its ``Origin``) is refused: it would log the browser in as someone else."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "a login must be posted from the console's own page")
    settings = request.app.state.settings
    principal = await request.app.state.authenticator.principal(redis, token.strip()) if token.strip() else None
    if principal is None:
        return page(request, "login.html", ["GET /v1/whoami"], 401, next=next, error="That token is not valid.")
    # only a page of the console, never elsewhere (an open redirect)
    target = next if next.startswith(PREFIX + "/") and not next.startswith(PREFIX + "//") else "/incidents"
    response = RedirectResponse(base(request) + target.removeprefix(PREFIX), status_code=303)
    max_age_s = int(settings.console_session_hours * 3600)
    set_session(response, token.strip(), request.scope.get("root_path", ""), max_age_s, settings.console_secure_cookie)
    return response


@router.post("/logout")
async def logout(request: Request) -> RedirectResponse:
    response = RedirectResponse(base(request) + "/login", status_code=303)
    clear_session(response, request.scope.get("root_path", ""), request.app.state.settings.console_secure_cookie)
    return response


async def _outcome(request: Request, to: str, done: str, action: Awaitable[Any]) -> RedirectResponse:
    """Run ``action``; back to ``to`` with ``done``, or with why the API would have refused it."""
    try:
        await action
    except (Conflict, Unavailable) as refused:
        return back(request, to, f"Not done: {refused}")
    except HTTPException as refused:
        return back(request, to, f"Not done: {refused.detail}")
    return back(request, to, done)


@router.post("/incidents/{incident_id}/acknowledge", dependencies=[CsrfChecked])
async def acknowledge(incident_id: str, request: Request, move: MoveDep, note: Note = "") -> RedirectResponse:
    moved = move(incident_id, IncidentStatus.ACKNOWLEDGED, StatusNote(note=note or None))
    return await _outcome(request, f"/incidents/{incident_id}", "Acknowledged.", moved)


@router.post("/incidents/{incident_id}/resolve", dependencies=[CsrfChecked])
async def resolve(incident_id: str, request: Request, move: MoveDep, note: Note = "") -> RedirectResponse:
    moved = move(incident_id, IncidentStatus.RESOLVED, StatusNote(note=note or None))
    return await _outcome(request, f"/incidents/{incident_id}", "Resolved.", moved)


@router.post("/jobs/{job_id}/cancel", dependencies=[CsrfChecked])
async def cancel(job_id: str, request: Request, redis: RedisDep) -> RedirectResponse:
    cancelled = jobs_api.cancel_job(job_id, redis, Response())
    return await _outcome(request, "/jobs", f"Cancellation of job {job_id} requested.", cancelled)


@router.post("/datasets/{dataset_id}/approve", dependencies=[CsrfChecked])
async def approve(dataset_id: str, request: Request, redis: RedisDep, publisher: PublisherDep) -> RedirectResponse:
    approved = publish_api.approve_dataset(dataset_id, redis, publisher)
    return await _outcome(request, f"/datasets/{dataset_id}", "Approved and published.", approved)


@router.post("/webhooks/dead-letters/{letter_id}/replay", dependencies=[CsrfChecked])
async def replay(letter_id: str, request: Request, dispatcher: DispatcherDep) -> RedirectResponse:
    replayed = webhooks_api.replay_dead_letter(letter_id, dispatcher)
    return await _outcome(request, "/webhooks", f"Dead letter {letter_id} delivered.", replayed)
