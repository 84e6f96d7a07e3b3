"""The on-call console: server-rendered pages of incidents, jobs, datasets, webhooks and stress runs at
``/console``, behind the API's tokens (a login form keeps the token in a cookie; forms are CSRF-checked).

Plain HTML forms and no script: each page reads through the same functions as the API routes it names, and a
read token sees no buttons (its POSTs are refused by the API's scope check).
"""

from __future__ import annotations

from fastapi import APIRouter

from driftloop.console import actions, pages
from driftloop.console.actions import OPEN_PATHS
from driftloop.console.session import SessionMiddleware

router = APIRouter()
router.include_router(pages.router)
router.include_router(actions.router)

__all__ = ["OPEN_PATHS", "SessionMiddleware", "router"]
