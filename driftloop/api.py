"""The control plane: FastAPI app assembled from the packages' routers, plus health and metrics.

Run it with ``driftloop api``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaClient
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError

import driftloop
from driftloop.metrics import RecordsCollector
from driftloop.settings import Settings
from feedback.api import router as feedback_router
from monitor.api import router as monitor_router


def create_api(settings: Settings) -> FastAPI:
    """The API bound to the Redis and broker of ``settings``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = Redis.from_url(settings.redis_url)
        yield
        await app.state.redis.aclose()

    app = FastAPI(
        title="driftloop",
        version=driftloop.__version__,
        lifespan=lifespan,
        description="Incidents, generation jobs, dataset versions and webhooks of the drift loop.",
    )
    app.include_router(monitor_router)
    app.include_router(feedback_router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """Ready when Redis and the Kafka broker answer."""
        checks = {"redis": await _redis_ok(app.state.redis), "kafka": await _kafka_ok(settings.kafka_bootstrap)}
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    registry = CollectorRegistry()
    registry.register(RecordsCollector(settings.redis_url, settings.llm_base_url))

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus text: this process's metrics and the shared records (incidents, jobs, datasets)."""
        body = await asyncio.to_thread(lambda: generate_latest(REGISTRY) + generate_latest(registry))
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app


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
