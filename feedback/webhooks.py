"""Webhook subscriptions and signed deliveries (Standard Webhooks), retried with exponential backoff.

Each (webhook, message id) is delivered at most once successfully: a redelivered event is skipped.
Every attempt is appended to the delivery log.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from datetime import UTC, datetime

import httpx
from pydantic import BaseModel, Field, HttpUrl
from redis.asyncio import Redis
from standardwebhooks import Webhook as Signer
from tenacity import AsyncRetrying, RetryError, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from feedback import metrics
from monitor.store import PREFIX, Collection


def _now() -> datetime:
    return datetime.now(UTC)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class WebhookCreate(BaseModel):
    url: HttpUrl
    event_types: list[str] = Field(default=["*"], description="event types to receive; '*' for all")
    secret: str | None = Field(None, description="whsec_… signing secret; generated when omitted")


class WebhookView(BaseModel):
    id: str
    url: str
    event_types: list[str]
    created_at: datetime = Field(default_factory=_now)


class Webhook(WebhookView):
    secret: str

    def wants(self, event_type: str) -> bool:
        return "*" in self.event_types or event_type in self.event_types


class Delivery(BaseModel):
    webhook_id: str
    message_id: str
    event_type: str
    attempt: int
    status_code: int | None
    ok: bool
    latency_ms: float
    error: str | None = None
    at: datetime = Field(default_factory=_now)


class DeliveryFailed(RuntimeError):
    """A receiver answered with a non-2xx status."""


def webhooks(redis: Redis) -> Collection[Webhook]:
    return Collection(redis, "webhook", Webhook)


async def register(redis: Redis, request: WebhookCreate) -> Webhook:
    hook = Webhook(
        id=f"wh-{uuid.uuid4().hex[:12]}",
        url=str(request.url),
        event_types=request.event_types,
        secret=request.secret or new_secret(),
    )
    await webhooks(redis).create(hook)
    return hook


def signed_headers(hook: Webhook, message_id: str, body: str) -> dict[str, str]:
    """Standard Webhooks headers for ``body``."""
    timestamp = _now()
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Signer(hook.secret).sign(message_id, timestamp, body),
    }


class Dispatcher:
    """Sends an event to every subscribed webhook and logs each attempt."""

    def __init__(self, redis: Redis, attempts: int = 5, backoff_s: float = 0.5, timeout_s: float = 5.0) -> None:
        self.redis, self.attempts, self.backoff_s, self.timeout_s = redis, attempts, backoff_s, timeout_s

    async def log(self, limit: int = 100) -> list[Delivery]:
        return [Delivery.model_validate_json(r) for r in await self.redis.lrange(f"{PREFIX}:deliveries", 0, limit - 1)]

    async def dispatch(self, event_type: str, message_id: str, data: dict) -> list[Delivery]:
        """Deliver to each subscriber not yet served for ``message_id``; return the final attempts."""
        body = json.dumps({"type": event_type, "timestamp": _now().isoformat(), "data": data})
        results = []
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            for hook in await webhooks(self.redis).list(limit=1000):
                done_key = f"{PREFIX}:delivered:{hook.id}:{message_id}"
                if hook.wants(event_type) and not await self.redis.exists(done_key):
                    delivery = await self._deliver(client, hook, event_type, message_id, body)
                    if delivery.ok:
                        await self.redis.set(done_key, delivery.model_dump_json())
                    results.append(delivery)
        return results

    async def _deliver(
        self, client: httpx.AsyncClient, hook: Webhook, event_type: str, message_id: str, body: str
    ) -> Delivery:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(multiplier=self.backoff_s, max=30, jitter=self.backoff_s / 2),
            retry=retry_if_exception_type((httpx.HTTPError, DeliveryFailed)),
        )
        delivery: Delivery | None = None
        try:
            async for attempt in retrying:
                with attempt:
                    delivery = await self._attempt(
                        client, hook, event_type, message_id, body, attempt.retry_state.attempt_number
                    )
                    if not delivery.ok:
                        raise DeliveryFailed(delivery.error)
        except RetryError:
            pass
        assert delivery is not None
        metrics.WEBHOOK_DELIVERIES.labels("delivered" if delivery.ok else "failed").inc()
        return delivery

    async def _attempt(
        self, client: httpx.AsyncClient, hook: Webhook, event_type: str, message_id: str, body: str, number: int
    ) -> Delivery:
        started = time.perf_counter()
        status, error = None, None
        try:
            response = await client.post(hook.url, content=body, headers=signed_headers(hook, message_id, body))
            status = response.status_code
            error = None if response.is_success else f"receiver answered {status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency = time.perf_counter() - started
        metrics.WEBHOOK_SECONDS.observe(latency)
        delivery = Delivery(
            webhook_id=hook.id,
            message_id=message_id,
            event_type=event_type,
            attempt=number,
            status_code=status,
            ok=error is None,
            latency_ms=round(latency * 1000, 2),
            error=error,
        )
        await self.redis.lpush(f"{PREFIX}:deliveries", delivery.model_dump_json())
        return delivery
