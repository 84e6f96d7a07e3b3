"""A cap on request bodies: larger than ``max_bytes`` (or a path's own limit) → 413 problem, by ``Content-Length`` and
while reading."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from core.problems import problem_response


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes the limit; routes turn it into a 413 problem."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {max_bytes} bytes")


class BodyLimitMiddleware:
    """Refuses bodies over ``max_bytes`` (over ``path_limits[path]`` on those paths): up front when
    ``Content-Length`` says so, else when reading passes it."""

    def __init__(self, app: ASGIApp, max_bytes: int, path_limits: Mapping[str, int] | None = None) -> None:
        self.app, self.default_bytes, self.path_limits = app, max_bytes, dict(path_limits or {})

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        root, path = scope.get("root_path", ""), scope["path"]
        max_bytes = self.path_limits.get(path[len(root) :] if root and path.startswith(root) else path)
        await self._limited(scope, receive, send, max_bytes or self.default_bytes)

    async def _limited(self, scope: AsgiScope, receive: Receive, send: Send, max_bytes: int) -> None:
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > max_bytes:
            return await self._refuse(scope, receive, send, max_bytes)
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise BodyTooLarge(max_bytes)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLarge:  # read by a middleware, outside the routes' exception handlers
            if started:
                raise
            await self._refuse(scope, receive, send, max_bytes)

    async def _refuse(self, scope: AsgiScope, receive: Receive, send: Send, max_bytes: int) -> None:
        response = problem_response(
            413, str(BodyTooLarge(max_bytes).detail), instance=scope["path"], headers={"Connection": "close"}
        )
        await response(scope, receive, send)
