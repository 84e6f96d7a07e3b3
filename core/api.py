"""The API toolkit every app's router uses: the Redis dependency, who is calling, pagination, 404s, problem
responses and the mark of a response that carries a secret.

A router that needs the caller takes ``principal: CurrentPrincipal``; the authentication middleware (the shell's)
records it with :func:`authenticate`, and middleware inside that one reads it with :func:`caller`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from redis.asyncio import Redis
from starlette.types import Scope as AsgiScope

from core.store import Collection


def problem(description: str) -> dict[str, Any]:
    """An OpenAPI response whose body is the API's RFC 9457 ``Problem`` (declared by ``driftloop.openapi``)."""
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def get_redis(request: Request) -> Redis:
    return request.app.state.redis


RedisDep = Annotated[Redis, Depends(get_redis)]


class Principal(BaseModel):
    """Who makes a request: a token's name and the scopes it was granted."""

    name: str = Field(description="the token's name; audit entries and status changes carry it")
    scopes: list[str] = Field(description="the granted scopes, with every scope they include")

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


_STATE = "principal"


def authenticate(scope: AsgiScope, principal: Principal) -> None:
    """Record ``principal`` as the caller of the request of ``scope`` (the authentication middleware does)."""
    scope.setdefault("state", {})[_STATE] = principal


def caller(scope: AsgiScope) -> Principal | None:
    """The caller of the request of ``scope``; None when nobody was authenticated (an open route, not HTTP)."""
    return scope.get("state", {}).get(_STATE) if scope["type"] == "http" else None


def get_principal(request: Request) -> Principal:
    """The caller; a 401 on a route that authentication left open."""
    principal = caller(request.scope)
    if principal is None:
        raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def no_store(response: Response) -> None:
    """Mark a response as carrying a secret: ``Cache-Control: no-store``, so neither the idempotency store nor
    an HTTP cache keeps it."""
    response.headers["Cache-Control"] = "no-store"


NoStore = Depends(no_store)
"""``dependencies=[NoStore]`` on a route whose successful response carries a secret (a token, a signing key)."""
MAX_OFFSET = 1_000_000_000
"""The largest ``offset`` a list takes: past any collection; ``offset + limit`` stays inside Redis's 64-bit range."""
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]

T = TypeVar("T")
R = TypeVar("R", bound=BaseModel)
FILTER_SCAN = 10_000
"""Most records a filtered list looks at (filters scan; Redis keeps no secondary indexes)."""


def paginate(response: Response, total: int, limit: int, offset: int) -> None:
    """Pagination headers of a list endpoint: ``X-Total-Count`` and, when more follow, a ``Link`` to the next page."""
    response.headers["X-Total-Count"] = str(total)
    if offset + limit < total:
        response.headers["Link"] = f'<?limit={limit}&offset={offset + limit}>; rel="next"'


async def list_page(
    collection: Collection[R], response: Response, limit: int, offset: int, keep: Callable[[R], bool] | None = None
) -> list[R]:
    """One page of ``collection``, newest first, optionally only records that ``keep`` accepts, with headers."""
    if keep is None:
        paginate(response, await collection.count(), limit, offset)
        return await collection.list(limit, offset)
    matching = [record for record in await collection.list(limit=FILTER_SCAN) if keep(record)]
    paginate(response, len(matching), limit, offset)
    return matching[offset : offset + limit]


def found(item: T | None, kind: str, item_id: str) -> T:
    """``item``, or a 404 naming what was not found."""
    if item is None:
        raise HTTPException(404, f"no {kind} {item_id}")
    return item
