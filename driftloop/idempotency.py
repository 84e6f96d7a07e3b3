"""``Idempotency-Key`` on POST: a retry gets the first response again instead of a second effect.

The first response (status, content type, body) is kept in Redis for ``ttl_s`` under (token, key, method,
path), the token by its SHA-256 (``driftloop.auth.token_id``), never by its name: a token re-issued under a
revoked one's name starts afresh. This runs inside ``ScopeMiddleware``, so a replay only reaches a caller who
passed the route's scope check just now. A retry with the same body is answered from there with
``Idempotent-Replayed: true``; the same key with another body is a 422 problem, and one whose first request is
still running a 409. Server errors are not kept, so a retry after one runs again. JSON bodies compare by content
(nested up to pydantic's parser limit; deeper ones by their bytes).

A response that carries a secret (a new bearer token, a webhook's ``whsec_`` secret) says so with
``Cache-Control: no-store``: its body is never kept, only that the request was done, and a retry gets a 409
problem instead of the secret or a second effect.

>>> fingerprint(b'{"a": 1, "b": [2]}') == fingerprint(b'{"b":[2],"a":1}')
True
>>> fingerprint(b"[" * 10_000) == fingerprint(b"[" * 10_000)
True
>>> no_store([(b"cache-control", b"private, No-Store")])
True
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json

from pydantic import BaseModel
from pydantic_core import from_json
from redis.asyncio import Redis
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from core import keys
from core.problems import problem_response
from driftloop.auth import token_id

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
PENDING_TTL_S = 300
"""How long a key stays locked by a first request that never finishes (a crashed process)."""


class Stored(BaseModel):
    fingerprint: str
    status: int | None = None
    content_type: str | None = None
    body: str = ""  # base64
    withheld: bool = False
    """The response carried a secret (``Cache-Control: no-store``): done, but not kept."""

    @property
    def pending(self) -> bool:
        return self.status is None


def fingerprint(body: bytes) -> str:
    """SHA-256 of a request body; of its canonical form when it is JSON that pydantic's bounded parser reads."""
    with contextlib.suppress(ValueError):
        body = json.dumps(from_json(body), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(body).hexdigest()


def no_store(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether response ``headers`` forbid keeping the response (``Cache-Control: no-store``)."""
    directives = Headers(raw=headers).get("cache-control", "").lower().split(",")
    return "no-store" in {directive.strip() for directive in directives}


def slot_key(token: str, key: str, method: str, path: str) -> str:
    """The Redis key of a stored response: per token id, idempotency key, method and path."""
    return keys.idempotency(hashlib.sha256("\0".join((token, key, method, path)).encode()).hexdigest())


class IdempotencyMiddleware:
    """Stores and replays POST responses by ``Idempotency-Key``; inside ``AuthMiddleware`` (keys are per token)
    and ``ScopeMiddleware`` (replays go only to a caller whose scope allows the route)."""

    def __init__(self, app: ASGIApp, ttl_s: int = 86_400) -> None:
        self.app, self.ttl_s = app, ttl_s

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        token = token_id(scope)
        key = Headers(scope=scope).get(HEADER) if token is not None and scope["method"] == "POST" else None
        if key is None:
            return await self.app(scope, receive, send)
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            detail = f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters"
            response = problem_response(400, detail, instance=scope["path"])
            return await response(scope, receive, send)

        body = await _read_body(receive)
        if body is None:  # the client went away
            return
        redis: Redis = scope["app"].state.redis
        slot = slot_key(token, key, scope["method"], scope["path"])
        mine = Stored(fingerprint=fingerprint(body))
        if not await redis.set(slot, mine.model_dump_json(), nx=True, ex=PENDING_TTL_S):
            raw = await redis.get(slot)
            if raw is not None:  # else it expired in between: run the request without storing it
                response = _answer(Stored.model_validate_json(raw), mine, scope["path"])
                return await response(scope, receive, send)
            return await self.app(scope, _replay(body, receive), send)

        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, _replay(body, receive), capture)
        except Exception:  # a cancelled request leaves the pending mark to expire
            await redis.delete(slot)
            raise
        status = start.get("status", 500)
        if status >= 500:
            await redis.delete(slot)
            return
        mine.status, mine.withheld = status, no_store(start.get("headers", []))
        if not mine.withheld:
            mine.content_type = Headers(raw=start.get("headers", [])).get("content-type")
            mine.body = base64.b64encode(b"".join(chunks)).decode()
        await redis.set(slot, mine.model_dump_json(), ex=self.ttl_s)


def _answer(stored: Stored, mine: Stored, path: str) -> Response:
    if stored.fingerprint != mine.fingerprint:
        return problem_response(422, f"this {HEADER} was used with another request body", instance=path)
    if stored.pending:
        return problem_response(409, f"a request with this {HEADER} is still in progress", instance=path)
    if stored.withheld:
        detail = f"the request with this {HEADER} was done ({stored.status}); its response carried a secret, shown once"
        return problem_response(409, detail, instance=path)
    headers = {"Idempotent-Replayed": "true"}
    return Response(base64.b64decode(stored.body), stored.status, headers, media_type=stored.content_type)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None when the client disconnects first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands out ``body`` once, then passes on to the real one (for the disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
