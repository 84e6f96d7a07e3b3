"""A cap on request bodies: larger than ``max_bytes`` → 413 problem, by ``Content-Length`` and while reading."""

from __future__ import annotations

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
    """Refuses bodies over ``max_bytes``: up front when ``Content-Length`` says so, else when reading passes it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            return await self._refuse(scope, receive, send)
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
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
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413, str(BodyTooLarge(self.max_bytes).detail), instance=scope["path"], headers={"Connection": "close"}
        )
        await response(scope, receive, send)
