"""Admin-only routes: API tokens and the audit log. ``driftloop.api`` hands them to ``ScopeMiddleware`` as its admin
routes, so every one needs the ``admin`` scope before anything else runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response

from core.api import Limit, NoStore, Offset, RedisDep, paginate
from driftloop.audit import AuditEntry, AuditLog
from driftloop.auth import NAME_PATTERN, TokenCreate, TokenCreated, TokenInfo, TokenStore

router = APIRouter(prefix="/v1")


@router.post("/tokens", status_code=201, tags=["tokens"], dependencies=[NoStore])
async def create_token(request: TokenCreate, redis: RedisDep) -> TokenCreated:
    """Issue a token; only this response carries it (Redis keeps its SHA-256)."""
    created = await TokenStore(redis).create(request.name, request.scopes)
    if created is None:
        raise HTTPException(409, f"a token named {request.name!r} exists")
    return created


@router.get("/tokens", tags=["tokens"])
async def list_tokens(redis: RedisDep) -> list[TokenInfo]:
    """Every token's name, scopes and creation time, oldest first."""
    return await TokenStore(redis).list()


@router.delete("/tokens/{name}", status_code=204, tags=["tokens"])
async def revoke_token(name: Annotated[str, Path(pattern=NAME_PATTERN)], redis: RedisDep) -> None:
    """Revoke a token: requests with it are refused from now on."""
    if not await TokenStore(redis).revoke(name):
        raise HTTPException(404, f"no token {name}")


@router.get("/audit", tags=["audit"])
async def list_audit(redis: RedisDep, response: Response, limit: Limit = 50, offset: Offset = 0) -> list[AuditEntry]:
    """Changes made through the API (every authenticated call but GET and HEAD) and refused calls (401, 403), newest
    first, for ``DRIFTLOOP_AUDIT_RETENTION_DAYS``."""
    log = AuditLog(redis)
    paginate(response, await log.count(), limit, offset)
    return await log.list(limit, offset)
