"""The audit log: who did what, when and from where — every authenticated call that is not a read, and every refusal.
Telemetry that apps send (the ingest routes) is data, not a change: only its refusals are recorded.

Entries live in a Redis sorted set scored by their time, and each write drops those older than the retention: a
flood of cheap calls cannot push out recent history. ``GET /v1/audit`` pages through them, newest first. A 401 can
come from anyone, so at most ``unauthenticated_per_minute`` of them are recorded a minute (all clients together):
whatever a stranger sends, they take at most that many entries per minute of the retention.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from redis.asyncio import Redis
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from core import keys
from core.api import caller
from driftloop.auth import SAFE_METHODS, Scope, bearer, hash_token, on_routes

MAX_PATH = 256
"""Characters of a request path an entry keeps (a stranger chooses the path of a 401)."""
_CHALLENGED_SCOPE = re.compile(rb'scope="(\w+)"')


class AuditEntry(BaseModel):
    who: str = Field(
        description="name of the token; on a 401 `anonymous` (no bearer token) or `sha256:` and the first 12 hex "
        "digits of the presented token's SHA-256"
    )
    method: str
    path: str = Field(description=f"path of the request (its first {MAX_PATH} characters)")
    status: int = Field(description="status code of the response")
    at: datetime
    client_ip: str | None = Field(None, description="the peer, or the client that a trusted proxy forwarded for")
    lacked_scope: Scope | None = Field(None, description="on a 403: the scope the token lacked")


class AuditLog:
    """``AuditEntry`` records in a Redis sorted set scored by their time."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def record(self, entry: AuditEntry, retention: timedelta) -> None:
        """Add ``entry`` and drop the entries older than ``retention``."""
        at = entry.at.timestamp()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(keys.AUDIT, {entry.model_dump_json(): at})
            pipe.zremrangebyscore(keys.AUDIT, "-inf", f"({at - retention.total_seconds()}")
            await pipe.execute()

    async def admit_unauthenticated(self, at: datetime, per_minute: int) -> bool:
        """Whether a 401 at ``at`` is among the first ``per_minute`` of its minute (it counts as one)."""
        key = keys.audit_unauthenticated(str(int(at.timestamp() // 60)))
        async with self.redis.pipeline(transaction=True) as pipe:
            seen, _ = await pipe.incr(key).expire(key, 120).execute()
        return seen <= per_minute

    async def count(self) -> int:
        return await self.redis.zcard(keys.AUDIT)

    async def list(self, limit: int = 50, offset: int = 0) -> list[AuditEntry]:
        """Newest first."""
        raws = await self.redis.zrevrange(keys.AUDIT, offset, offset + limit - 1)
        return [AuditEntry.model_validate_json(raw) for raw in raws]


class AuditMiddleware:
    """Records, when its response starts (or fails: as a 500), each call that a token made with a method other than
    GET and HEAD (but on ``ingest_routes``), each 403 and each 401.

    Sits outside ``AuthMiddleware``: it sees its refusals, and the principal it recorded (``core.api.caller``), also
    for a 403. ``client_ip`` is the ASGI client, so forwarded headers count only as far as a middleware outside this
    one trusts them.
    """

    def __init__(
        self,
        app: ASGIApp,
        retention: timedelta,
        unauthenticated_per_minute: int,
        ingest_routes: Iterable[BaseRoute] = (),
    ) -> None:
        self.app, self.retention, self.unauthenticated_per_minute = app, retention, unauthenticated_per_minute
        self.ingest_routes = tuple(ingest_routes)

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        recorded = False

        async def record(status: int, headers: list[tuple[bytes, bytes]]) -> None:
            nonlocal recorded
            recorded = True
            log, who, at = AuditLog(scope["app"].state.redis), caller(scope), datetime.now(UTC)
            change = scope["method"] not in SAFE_METHODS and not on_routes(scope, self.ingest_routes)
            if who is not None and (status == 403 or change):
                name, lacked = who.name, _challenged_scope(headers) if status == 403 else None
            elif who is None and status == 401:
                if not await log.admit_unauthenticated(at, self.unauthenticated_per_minute):
                    return
                name, lacked = _presented(scope), None
            else:
                return
            client = scope.get("client")
            entry = AuditEntry(
                who=name,
                method=scope["method"],
                path=scope["path"][:MAX_PATH],
                status=status,
                at=at,
                client_ip=client[0] if client else None,
                lacked_scope=lacked,
            )
            await log.record(entry, self.retention)

        async def send_recorded(message: Message) -> None:
            if message["type"] == "http.response.start" and not recorded:
                await record(message["status"], message.get("headers", []))
            await send(message)

        try:
            await self.app(scope, receive, send_recorded)
        except Exception:
            if not recorded:
                await record(500, [])
            raise


def _presented(scope: AsgiScope) -> str:
    """Who a request without a valid token claims to be: ``anonymous`` or the hash prefix of its token."""
    token = bearer(scope)
    return f"sha256:{hash_token(token)[:12]}" if token else "anonymous"


def _challenged_scope(headers: list[tuple[bytes, bytes]]) -> Scope | None:
    """The scope a 403's RFC 6750 challenge (``WWW-Authenticate: Bearer …, scope="…"``) asks for."""
    for key, value in headers:
        if key.lower() == b"www-authenticate" and (match := _CHALLENGED_SCOPE.search(value)):
            return Scope(match[1].decode())
    return None
