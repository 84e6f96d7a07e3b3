"""The audit log: who changed what, when and from where — every authenticated call that is not a read.

Entries live in a capped Redis list, newest first; ``GET /v1/audit`` pages through them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field
from redis.asyncio import Redis
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from core import keys
from core.api import caller
from driftloop.auth import SAFE_METHODS


class AuditEntry(BaseModel):
    who: str = Field(description="name of the token")
    method: str
    path: str
    status: int = Field(description="status code of the response")
    at: datetime
    client_ip: str | None = None


class AuditLog:
    """A Redis list of ``AuditEntry``, newest first, trimmed to ``max_entries``."""

    def __init__(self, redis: Redis, max_entries: int = 10_000) -> None:
        self.redis, self.max_entries = redis, max_entries

    async def record(self, entry: AuditEntry) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.lpush(keys.AUDIT, entry.model_dump_json()).ltrim(keys.AUDIT, 0, self.max_entries - 1).execute()

    async def count(self) -> int:
        return await self.redis.llen(keys.AUDIT)

    async def list(self, limit: int = 50, offset: int = 0) -> list[AuditEntry]:
        raws = await self.redis.lrange(keys.AUDIT, offset, offset + limit - 1)
        return [AuditEntry.model_validate_json(raw) for raw in raws]


class AuditMiddleware:
    """Records each authenticated non-GET/HEAD request when its response starts (or fails: as a 500).

    Sits inside ``AuthMiddleware``, whose principal it reads (``core.api.caller``).
    """

    def __init__(self, app: ASGIApp, max_entries: int = 10_000) -> None:
        self.app, self.max_entries = app, max_entries

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        who = caller(scope)
        if who is None or scope["method"] in SAFE_METHODS:
            return await self.app(scope, receive, send)
        recorded = False

        async def record(status: int) -> None:
            nonlocal recorded
            recorded = True
            client = scope.get("client")
            entry = AuditEntry(
                who=who.name,
                method=scope["method"],
                path=scope["path"],
                status=status,
                at=datetime.now(UTC),
                client_ip=client[0] if client else None,
            )
            await AuditLog(scope["app"].state.redis, self.max_entries).record(entry)

        async def send_recorded(message: Message) -> None:
            if message["type"] == "http.response.start" and not recorded:
                await record(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_recorded)
        except Exception:
            if not recorded:
                await record(500)
            raise
