"""Who is calling: the name and scopes of the request's token."""

from __future__ import annotations

from fastapi import APIRouter

from core.api import CurrentPrincipal, Principal

router = APIRouter(prefix="/v1", tags=["tokens"])


@router.get("/whoami")
async def whoami(principal: CurrentPrincipal) -> Principal:
    """The calling token's name and granted scopes (``bootstrap`` for the admin token of the settings)."""
    return principal
