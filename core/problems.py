"""Errors as RFC 9457 problem details (``application/problem+json``), for every route of the API.

HTTP errors (raised, or from routing: 404, 405), request validation (422, with ``errors``) and domain
errors, by :data:`DOMAIN_ERRORS`: the built-ins they subclass (``ValueError`` → 400, ``PermissionError`` → 403,
``LookupError`` and ``FileNotFoundError`` → 404, ``FileExistsError`` → 409, ``TimeoutError`` → 503), the
meanings of :mod:`core.errors` they mix in before them (``Conflict`` → 409, ``Unprocessable`` → 422,
``Unavailable`` → 503, ``Misconfigured`` → 500), and Redis that does not answer (redis-py's ``ConnectionError``
and ``TimeoutError`` → 503). A 503 carries ``Retry-After``. Routers raise domain errors and catch none;
:class:`UnavailableMiddleware` answers those of the middleware (authentication, the audit log) alike. Anything
else is a 500 that names no internals.

>>> import json
>>> json.loads(problem_response(404, "no job 7", instance="/v1/jobs/7").body)
{'type': 'about:blank', 'title': 'Not Found', 'status': 404, 'detail': 'no job 7', 'instance': '/v1/jobs/7'}
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import Conflict, Misconfigured, Unavailable, Unprocessable

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
DOMAIN_ERRORS: dict[type[Exception], int] = {
    Conflict: 409,
    Unprocessable: 422,
    Unavailable: 503,
    Misconfigured: 500,
    ValueError: 400,
    PermissionError: 403,
    LookupError: 404,
    FileNotFoundError: 404,
    FileExistsError: 409,
    TimeoutError: 503,
    RedisConnectionError: 503,
    RedisTimeoutError: 503,
}
RETRY_AFTER_S = 5
"""Seconds a client is asked to wait before it retries a 503 (``Retry-After``)."""


class ValidationIssue(BaseModel):
    """One reason a request was invalid."""

    loc: list[str | int] = Field(description="where: ('body' | 'query' | 'path' | 'header', field, …)")
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="URI reference naming the problem type")
    title: str = Field(description="short summary of the problem type")
    status: int = Field(description="the HTTP status code")
    detail: str | None = Field(None, description="what went wrong in this occurrence")
    instance: str | None = Field(None, description="the request path of this occurrence")
    errors: list[ValidationIssue] | None = Field(None, description="the invalid parts of a request (422)")


class ProblemResponse(JSONResponse):
    media_type = MEDIA_TYPE


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """A problem details response; ``title`` is the status phrase (RFC 9457 ``about:blank``)."""
    if status in (204, 304) or status < 200:
        return Response(status_code=status, headers=headers)
    problem = Problem(title=_phrase(status), status=status, detail=detail, instance=instance, **extensions)
    return ProblemResponse(problem.model_dump(mode="json", exclude_none=True), status_code=status, headers=headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_schema_response(description: str) -> dict[str, Any]:
    """An OpenAPI response object whose body is a ``Problem``."""
    return {"description": description, "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail, default=str)
    if detail == _phrase(exc.status_code):
        detail = None
    return problem_response(exc.status_code, detail, instance=request.url.path, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        ValidationIssue(loc=list(e.get("loc", ())), msg=str(e.get("msg", "")), type=str(e.get("type", "")))
        for e in exc.errors()
    ]
    return problem_response(
        422,
        "the request is invalid: see errors",
        instance=request.url.path,
        errors=[e.model_dump() for e in errors],
    )


def domain_status(exc: Exception) -> int | None:
    """The status of a domain error: the mapping of the first of its bases that :data:`DOMAIN_ERRORS` knows;
    None for an exception that is no domain error.

    >>> from redis.exceptions import BusyLoadingError
    >>> class AlreadyDone(Conflict, ValueError): ...
    >>> domain_status(FileNotFoundError()), domain_status(KeyError("x")), domain_status(AlreadyDone())
    (404, 404, 409)
    >>> domain_status(BusyLoadingError("Redis is loading the dataset in memory")), domain_status(RuntimeError())
    (503, None)
    """
    return next((DOMAIN_ERRORS[cls] for cls in type(exc).__mro__ if cls in DOMAIN_ERRORS), None)


async def _domain_error(request: Request, exc: Exception) -> Response:
    return _domain_response(exc, request.method, request.url.path)


def _domain_response(exc: Exception, method: str, path: str) -> Response:
    if isinstance(exc, Misconfigured):
        log.error("%s %s: %s", method, path, exc)
        return problem_response(500, "the server is misconfigured; the API log says why", instance=path)
    status = domain_status(exc) or 500
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return problem_response(status, _describe(exc) or _phrase(status), instance=path, headers=headers)


def _describe(exc: Exception) -> str:
    """A client-facing message of a domain error: its text, without file system paths or Redis's address."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return "Redis does not answer; retry later"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or type(exc).__name__}: {Path(str(exc.filename)).name}"
    if isinstance(exc, KeyError) and exc.args:
        return f"not found: {exc.args[0]}"
    return str(exc)


async def _internal_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, PydanticValidationError):  # handled here, not by the server: log it ourselves
        log.error("invalid data in %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "the server could not handle this request", instance=request.url.path)


class UnavailableMiddleware:
    """Answers a 503 domain error that the middleware inside it raise (Redis down while authenticating or
    auditing) as a route's would be answered, when no response has started; other errors pass."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_started(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_started)
        except Exception as exc:
            if started or domain_status(exc) != 503:
                raise
            await _domain_response(exc, scope["method"], scope["path"])(scope, receive, send)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with problem details."""
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for error in DOMAIN_ERRORS:
        app.add_exception_handler(error, _domain_error)
    # pydantic's ValidationError is a ValueError, but inside a route it means bad stored data: a server error
    app.add_exception_handler(PydanticValidationError, _internal_error)
    app.add_exception_handler(Exception, _internal_error)
