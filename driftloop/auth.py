"""Bearer tokens with nested scopes (``admin`` ⊃ ``operate`` ⊃ ``read``, and ``admin`` ⊃ ``ingest``), kept in Redis
only as SHA-256 hashes.

A token is ``dl_`` and 43 URL-safe characters, shown once when it is created. ``AuthMiddleware`` lets
through only requests with a valid token on every route but the open ones; ``ScopeMiddleware``, inside it,
only those whose token has the scope they need: GET and HEAD ``read``, other methods ``operate``, the admin
routes (``driftloop.admin_api``'s) ``admin``, the ingest routes (``driftloop.otlp_api``'s: telemetry that
instrumented apps send) ``ingest``, which no other scope but ``admin`` includes, so an app's exporter holds a token
that can do nothing else. Both run before the body cap, idempotency and any route, so
nothing past them serves a caller its scope does not allow. Routers read the caller as
``core.api.CurrentPrincipal``; middleware reads the calling token's id (its SHA-256) with :func:`token_id`.

>>> Scope.operate.implied()
[<Scope.read: 'read'>, <Scope.operate: 'operate'>]
>>> Scope.ingest.implied()
[<Scope.ingest: 'ingest'>]
>>> hash_token("dl_example")[:12]
'e24d9843710e'
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

from core import keys
from core.api import Principal, authenticate, caller
from core.problems import problem_response

BOOTSTRAP = "bootstrap"
"""Principal name of the ``admin_token`` setting; no stored token may take it."""
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SAFE_METHODS = frozenset({"GET", "HEAD"})
_TOKEN_ID = "token_id"


class Scope(StrEnum):
    """What a token may do: ``read``, ``operate`` and ``admin`` each include those before them; ``ingest`` (send
    telemetry) stands alone, included only by ``admin``."""

    read = "read"
    operate = "operate"
    admin = "admin"
    ingest = "ingest"

    def implied(self) -> list[Scope]:
        """This scope and every scope it includes."""
        if self is Scope.ingest:
            return [Scope.ingest]
        order = [Scope.read, Scope.operate, Scope.admin]
        return order[: order.index(self) + 1] + ([Scope.ingest] if self is Scope.admin else [])


def closure(scopes: Iterable[Scope]) -> list[Scope]:
    """Every scope granted by ``scopes``, in order."""
    granted = {implied for scope in scopes for implied in Scope(scope).implied()}
    return [scope for scope in Scope if scope in granted]


class TokenInfo(Principal):
    """A token as listed: never the token nor its hash."""

    scopes: list[Scope]
    created_at: datetime


class TokenCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "trainer-ci", "scopes": ["read"]}]})

    name: str = Field(pattern=NAME_PATTERN, description="unique name; audit entries carry it")
    scopes: list[Scope] = Field(
        [Scope.read], min_length=1, description="granted scopes (admin ⊃ operate ⊃ read; admin ⊃ ingest)"
    )


class TokenCreated(TokenInfo):
    token: str = Field(description="the bearer token; this response is the only place it appears")


def new_token() -> str:
    return "dl_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Tokens in Redis: ``token:<sha256>`` → record, and the hash ``tokens`` of name → sha256."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def create(self, name: str, scopes: Iterable[Scope]) -> TokenCreated | None:
        """A new token; None when ``name`` is taken (or reserved)."""
        token = new_token()
        info = TokenInfo(name=name, scopes=closure(scopes), created_at=datetime.now(UTC))
        if name == BOOTSTRAP or not await self.redis.hsetnx(keys.TOKENS, name, hash_token(token)):
            return None
        await self.redis.set(keys.token(hash_token(token)), info.model_dump_json())
        return TokenCreated(**info.model_dump(), token=token)

    async def list(self) -> list[TokenInfo]:
        """Every token, oldest first."""
        digests = [d.decode() for d in (await self.redis.hgetall(keys.TOKENS)).values()]
        raws = await self.redis.mget([keys.token(d) for d in digests]) if digests else []
        return sorted((TokenInfo.model_validate_json(r) for r in raws if r), key=lambda t: t.created_at)

    async def revoke(self, name: str) -> bool:
        """Delete the token called ``name``; False when there is none."""
        digest = await self.redis.hget(keys.TOKENS, name)
        if digest is None:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.delete(keys.token(digest.decode())).hdel(keys.TOKENS, name).execute()
        return True

    async def resolve(self, token: str) -> TokenInfo | None:
        """Whose token this is, or None."""
        raw = await self.redis.get(keys.token(hash_token(token)))
        return TokenInfo.model_validate_json(raw) if raw else None


def _challenge(error: str | None = None, scope: Scope | None = None) -> dict[str, str]:
    """An RFC 6750 ``WWW-Authenticate`` header."""
    params = [f'error="{error}"'] if error else []
    if scope:
        params.append(f'scope="{scope}"')
    return {"WWW-Authenticate": "Bearer" + (" " + ", ".join(params) if params else "")}


class Authenticator:
    """Who holds a token: a stored token's principal, or ``bootstrap`` for the token whose SHA-256 is
    ``admin_token_hash`` (the ``admin_token`` setting)."""

    def __init__(self, admin_token_hash: str | None = None) -> None:
        self.admin_token_hash = admin_token_hash
        self.bootstrap = TokenInfo(name=BOOTSTRAP, scopes=list(Scope), created_at=datetime.now(UTC))

    async def principal(self, redis: Redis, token: str) -> TokenInfo | None:
        """The principal of ``token``, or None."""
        if self.admin_token_hash and hmac.compare_digest(hash_token(token), self.admin_token_hash):
            return self.bootstrap
        return await TokenStore(redis).resolve(token)


class AuthMiddleware:
    """Authenticates every HTTP request outside ``open_paths`` (401 otherwise).

    The principal (a ``TokenInfo``, as ``authenticator`` finds it) is recorded with ``core.api.authenticate`` and
    the token's id with :func:`token_id`. What the principal may do is ``ScopeMiddleware``'s to check.
    """

    def __init__(self, app: ASGIApp, open_paths: Iterable[str], authenticator: Authenticator) -> None:
        self.app, self.open_paths, self.authenticator = app, frozenset(open_paths), authenticator

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or route_path(scope) in self.open_paths:
            return await self.app(scope, receive, send)
        token = bearer(scope)
        principal = await self.authenticator.principal(scope["app"].state.redis, token) if token else None
        if principal is None:
            detail = "a bearer token is required" if token is None else "the bearer token is not valid"
            response = problem_response(
                401, detail, instance=scope["path"], headers=_challenge(None if token is None else "invalid_token")
            )
            return await response(scope, receive, send)
        authenticate(scope, principal)
        scope["state"][_TOKEN_ID] = hash_token(token)
        await self.app(scope, receive, send)


class ScopeMiddleware:
    """Refuses (403) a request whose caller lacks the scope it needs: ``admin`` for one that one of
    ``admin_routes`` would serve, ``ingest`` for one of ``ingest_routes``, else ``read`` for GET and HEAD and
    ``operate`` for other methods.

    Inside ``AuthMiddleware``, whose principal it reads; requests on open routes (no principal) pass.
    """

    def __init__(
        self, app: ASGIApp, admin_routes: Iterable[BaseRoute], ingest_routes: Iterable[BaseRoute] = ()
    ) -> None:
        self.app, self.admin_routes, self.ingest_routes = app, tuple(admin_routes), tuple(ingest_routes)

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        principal = caller(scope)
        if principal is None:
            return await self.app(scope, receive, send)
        needed = self.needed(scope)
        if principal.allows(needed):
            return await self.app(scope, receive, send)
        response = problem_response(
            403,
            f"{scope['method']} {route_path(scope)} needs the {needed} scope",
            instance=scope["path"],
            headers=_challenge("insufficient_scope", needed),
        )
        await response(scope, receive, send)

    def needed(self, scope: AsgiScope) -> Scope:
        """The scope a request needs: ``admin`` on an admin route, ``ingest`` on an ingest route, else by its
        method."""
        if on_routes(scope, self.admin_routes):
            return Scope.admin
        if on_routes(scope, self.ingest_routes):
            return Scope.ingest
        return Scope.read if scope["method"] in SAFE_METHODS else Scope.operate


def on_routes(scope: AsgiScope, routes: Iterable[BaseRoute]) -> bool:
    """Whether one of ``routes`` would take the request of ``scope`` (by path; any method)."""
    return any(route.matches(scope)[0] is not Match.NONE for route in routes)


def token_id(scope: AsgiScope) -> str | None:
    """The id (SHA-256) of the token ``AuthMiddleware`` let the request of ``scope`` through with; None on open
    routes."""
    return scope.get("state", {}).get(_TOKEN_ID) if scope["type"] == "http" else None


def route_path(scope: AsgiScope) -> str:
    """The path without the ``root_path`` a proxy mounts the API under."""
    root, path = scope.get("root_path", ""), scope["path"]
    return path[len(root) :] if root and path.startswith(root) else path


def bearer(scope: AsgiScope) -> str | None:
    """The request's bearer token; "" for other credentials, None without an ``Authorization`` header."""
    for key, value in scope["headers"]:
        if key == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if kind.lower() == "bearer" and token.strip() else ""
    return None
