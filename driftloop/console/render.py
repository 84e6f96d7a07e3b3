"""Rendering console pages: the Jinja templates, what every page shows (who is logged in, the CSRF token, a
notice left by the last action, the API calls behind the page) and the CSRF check of the forms."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote

from fastapi import Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from core.api import caller
from driftloop.auth import Scope
from driftloop.console.session import PREFIX, check_csrf, csrf_token, session_token

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
NOTICE = "driftloop_console_notice"
"""Cookie carrying what the last action did to the page it redirects to (read once)."""
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""No script at all, nothing from elsewhere, never framed, never cached (pages show redacted traffic)."""


def base(request: Request) -> str:
    """The console's path, under the ``root_path`` a proxy mounts the API at."""
    return request.scope.get("root_path", "") + PREFIX


def page(request: Request, template: str, api: list[str], status_code: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered for the caller; ``api``: the calls behind the page (``GET /v1/...``)."""
    principal = caller(request.scope)
    token = session_token(request.scope)
    context |= {
        "base": base(request),
        "root": request.scope.get("root_path", ""),
        "principal": principal,
        "can_operate": principal is not None and principal.allows(Scope.operate),
        "csrf": csrf_token(token) if token else "",
        "notice": unquote(request.cookies.get(NOTICE, "")),
        "api": api,
    }
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status_code, headers=PAGE_HEADERS)
    if NOTICE in request.cookies:
        response.delete_cookie(NOTICE, path=base(request))
    return response


def back(request: Request, to: str, notice: str) -> RedirectResponse:
    """After a form: to the page ``to`` (under the console), telling what happened there."""
    response = RedirectResponse(base(request) + to, status_code=303)
    response.set_cookie(NOTICE, quote(notice[:300]), max_age=60, path=base(request), httponly=True, samesite="strict")
    return response


def check_form(request: Request, csrf: Annotated[str, Form()] = "") -> None:
    """A console form's CSRF token must be the session's (403 otherwise: a forged post)."""
    token = session_token(request.scope)
    max_age_s = request.app.state.settings.console_session_hours * 3600
    if token is None or not check_csrf(token, csrf, max_age_s):
        raise HTTPException(403, "the form's CSRF token is missing or not this session's")


CsrfChecked = Depends(check_form)
