"""The control plane: FastAPI app assembled from the packages' routers, plus health and metrics.

Every route but ``/healthz``, ``/readyz``, ``/metrics`` and the API docs (served only with
``DRIFTLOOP_API_DOCS``) and the console's login needs a bearer token (``driftloop.auth``; the console's pages,
``driftloop.console``, take it from their session cookie); changes and refusals are audited,
errors are problem details, POSTs take an ``Idempotency-Key`` (kept per token, never for a response marked
``Cache-Control: no-store``) and bodies are capped. These are app-wide middleware and handlers, so routes
added to the packages' routers get them too. Run it with ``driftloop api``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import uvicorn
from aiokafka import AIOKafkaClient
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.exceptions import RedisError
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

import driftloop
from core.problems import UnavailableMiddleware, install_problem_handlers
from core.redis_client import connect
from driftloop import console
from driftloop.admin_api import router as admin_router
from driftloop.audit import AuditMiddleware
from driftloop.auth import Authenticator, AuthMiddleware, ScopeMiddleware, hash_token
from driftloop.console import SessionMiddleware
from driftloop.idempotency import IdempotencyMiddleware
from driftloop.limits import BodyLimitMiddleware
from driftloop.metrics import RecordsCollector
from driftloop.openapi import install_openapi
from driftloop.otlp_api import PATH as OTLP_PATH
from driftloop.otlp_api import router as otlp_router
from driftloop.settings import Settings
from driftloop.traffic_buffer import TrafficBuffer
from driftloop.whoami_api import router as whoami_router
from feedback.api import router as feedback_router
from feedback.deps import delivery_loop
from feedback.deps import dispatcher as webhook_dispatcher
from feedback.metrics import FeedbackMetrics
from monitor.api import router as monitor_router
from monitor.segments_api import router as segments_router
from validation.api import router as stress_router

DESCRIPTION = """Incidents, generation jobs, dataset versions and webhooks of the drift loop.

Send `Authorization: Bearer <token>`: GET and HEAD need scope `read`, other methods `operate`,
tokens and the audit log `admin` (admin ⊃ operate ⊃ read), OTLP trace exports (`POST /v1/traces`) `ingest`
(only admin includes it). Errors are RFC 9457 problem details.
A POST with an `Idempotency-Key` header is answered once; a retry with the same key and body gets
the stored response again (`Idempotent-Replayed: true`)."""
# Without DRIFTLOOP_API_DOCS no /docs, /redoc or /openapi.json is served (app.openapi() still builds the document).
API_REDIS_ATTEMPTS = 2
"""Attempts of a Redis command in the API: one more after a dropped connection, then a 503."""
NO_DOCS: dict[str, None] = dict.fromkeys(("openapi_url", "docs_url", "redoc_url", "swagger_ui_oauth2_redirect_url"))


def create_api(settings: Settings) -> FastAPI:
    """The API bound to the Redis and broker of ``settings``; ``SecretKeysMissing`` without ``secret_keys``."""
    settings.secret_box().install()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = connect(settings.redis_url, settings.redis_timeout_s, attempts=API_REDIS_ATTEMPTS)
        app.state.event_dispatcher = webhook_dispatcher(app.state.redis, settings)  # read by monitor.api
        buffer = TrafficBuffer(
            settings.kafka_bootstrap, settings.traffic_topic, settings.otlp_buffer_events, settings.otlp_send_timeout_s
        )
        # delivers the webhooks of every process; sends the events of OTLP spans (read by driftloop.otlp_api)
        async with delivery_loop(app.state.redis, settings).running(), buffer.running() as app.state.traffic_buffer:
            yield
        await app.state.redis.aclose()

    app = FastAPI(
        title="driftloop",
        version=driftloop.__version__,
        lifespan=lifespan,
        description=DESCRIPTION,
        **({} if settings.api_docs else NO_DOCS),
    )
    app.state.settings = settings  # read by the packages' routers (feedback.deps)
    app.include_router(monitor_router)
    app.include_router(segments_router)
    app.include_router(feedback_router)
    app.include_router(admin_router)
    app.include_router(whoami_router)
    app.include_router(stress_router)
    app.include_router(console.router)
    app.include_router(otlp_router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Redis or the broker does not answer"}},
    )
    async def readyz() -> JSONResponse:
        """Ready when Redis and the Kafka broker answer."""
        checks = {"redis": await _redis_ok(app.state.redis), "kafka": await _kafka_ok(settings.kafka_bootstrap)}
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    FeedbackMetrics.default()  # on REGISTRY from the first scrape: this process cancels, approves and delivers
    registry = CollectorRegistry()
    registry.register(RecordsCollector(settings.redis_url, settings.llm_base_url, settings.llm_api_key))

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus text: this process's metrics and the shared records (incidents, jobs, datasets)."""
        body = await asyncio.to_thread(lambda: generate_latest(REGISTRY) + generate_latest(registry))
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    install_problem_handlers(app)
    docs = (app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    open_paths = {"/healthz", "/readyz", "/metrics", *filter(None, docs), *console.OPEN_PATHS}
    # added innermost first: a request meets the trusted proxies' headers, then the 503 of a dependency down in
    # the middleware, then audit (refusals included), then the console's cookie (as the bearer token of console
    # pages), then authentication, then the scope check, then the body cap, then idempotency, whose replays so
    # reach only callers the scope check passed
    app.add_middleware(IdempotencyMiddleware, ttl_s=settings.idempotency_ttl_s)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        path_limits={OTLP_PATH: settings.otlp_max_request_bytes},
    )
    app.add_middleware(ScopeMiddleware, admin_routes=admin_router.routes, ingest_routes=otlp_router.routes)
    admin_hash = hash_token(settings.admin_token.get_secret_value()) if settings.admin_token else None
    app.state.authenticator = Authenticator(admin_hash)  # read by the console's login
    app.add_middleware(AuthMiddleware, open_paths=open_paths, authenticator=app.state.authenticator)
    app.add_middleware(SessionMiddleware, open_paths=console.OPEN_PATHS, secure=settings.console_secure_cookie)
    retention = timedelta(days=settings.audit_retention_days)
    app.add_middleware(
        AuditMiddleware,
        retention=retention,
        unauthenticated_per_minute=settings.audit_unauthenticated_per_minute,
        ingest_routes=otlp_router.routes,
    )
    app.add_middleware(UnavailableMiddleware)
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=[str(network) for network in settings.trusted_proxies])
    install_openapi(app, open_paths)
    return app


def api_server(settings: Settings, host: str | None = None, port: int | None = None) -> uvicorn.Server:
    """A uvicorn server of the API; it leaves ``X-Forwarded-*`` to the app, which trusts only ``trusted_proxies``."""
    config = uvicorn.Config(
        create_api(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="warning",
        proxy_headers=False,
    )
    return uvicorn.Server(config)


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, bool] = Field(description="service → whether it answered")


async def _redis_ok(redis: Redis) -> bool:
    try:
        return bool(await redis.ping())
    except (RedisError, OSError):
        return False


async def _kafka_ok(bootstrap: str | None) -> bool:
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await client.bootstrap()
        return True
    except Exception:  # noqa: BLE001 - any client error means not ready
        return False
    finally:
        await client.close()
