"""Webhook subscriptions and signed deliveries (Standard Webhooks), retried with exponential backoff and jitter.

Dispatching an event records one delivery per subscriber in the outbox (``feedback.outbox``) and returns; the
delivery loops deliver it, so no caller waits on a receiver and one receiver's failure touches no other. Each
(webhook, message id) is delivered at most once successfully: a redelivered event is skipped. After the last
retry the message goes to the dead letters (``feedback.dead_letters``), which dispatch leaves alone until an
operator replays it; so does a delivery that cannot be signed (a stored secret that breaks the rule, written
before registration checked it). Every attempt is appended to the delivery log. Receivers pass the egress
policy (``feedback.egress``) at delivery time, after DNS resolution, and are connected to at the address that
was checked.

Subscriptions are kept with their signing secret sealed (``core.secrets``, the process's ``SecretBox``):
:func:`webhooks` seals on write and opens on read.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import secrets
import time
import uuid
from datetime import UTC, datetime

import httpx
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator
from redis.asyncio import Redis
from standardwebhooks import Webhook as Signer
from tenacity import AsyncRetrying, RetryError, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from core import keys
from core.errors import Unprocessable
from core.secrets import SecretBox
from core.store import Collection
from feedback.dead_letters import (
    DeadLetter,
    DeadLetterState,
    ReplayRefused,
    bury,
    dead_letter_id,
    dead_letters,
    is_dead,
)
from feedback.egress import EgressPolicy, ForbiddenDestination, pinned
from feedback.metrics import FeedbackMetrics
from feedback.outbox import Outbox, Pending

EVENT_TYPES = (
    "incident.opened",
    "incident.cause_added",
    "incident.acknowledged",
    "incident.resolved",
    "dataset.published",
    "job.failed",
    "candidate.verified",
    "candidate.rejected",
)
LOG_LENGTH = 10_000
SECRET_PREFIX = "whsec_"
SECRET_MIN_BYTES = 24
SECRET_RULE = f"a webhook secret is {SECRET_PREFIX} followed by the base64 of at least {SECRET_MIN_BYTES} random bytes"


def _now() -> datetime:
    return datetime.now(UTC)


class BadSecret(Unprocessable, ValueError):
    """A signing secret that breaks :data:`SECRET_RULE`; the message says how (never the secret)."""


def checked_secret(secret: str) -> str:
    """``secret`` when it follows :data:`SECRET_RULE`, else :class:`BadSecret`.

    >>> checked_secret(new_secret()).startswith("whsec_")
    True
    >>> checked_secret("whsec_AA==")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    feedback.webhooks.BadSecret: a webhook secret is whsec_ followed by the base64 of at least 24 ...; this one has 1
    """
    if not secret.startswith(SECRET_PREFIX):
        raise BadSecret(f"{SECRET_RULE}; this one does not start with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise BadSecret(f"{SECRET_RULE}; what follows {SECRET_PREFIX} here is not base64") from None
    if len(key) < SECRET_MIN_BYTES:
        raise BadSecret(f"{SECRET_RULE}; this one has {len(key)}")
    return secret


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_MIN_BYTES)).decode()


class WebhookCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://trainer.example.com/hooks/driftloop",
                    "event_types": ["dataset.published", "job.failed"],
                }
            ]
        }
    )

    url: HttpUrl
    event_types: list[str] = Field(
        default=["*"], description=f"event types to receive ({', '.join(EVENT_TYPES)}); '*' for all"
    )
    secret: str | None = Field(None, description=f"signing secret, generated when omitted; {SECRET_RULE}")

    @field_validator("secret")
    @classmethod
    def _usable(cls, secret: str | None) -> str | None:
        return None if secret is None else checked_secret(secret)

    @field_validator("event_types")
    @classmethod
    def _known(cls, types: list[str]) -> list[str]:
        unknown = sorted(set(types) - {*EVENT_TYPES, "*"})
        if unknown or not types:
            raise ValueError(f"unknown event types {unknown}; choose from {', '.join(EVENT_TYPES)} or '*'")
        return types


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
    """A receiver answered with a non-2xx status or could not be reached (retried)."""


class SealedWebhook(WebhookView):
    """A subscription as Redis keeps it: its signing secret sealed."""

    sealed_secret: str


class Webhooks:
    """The subscriptions in Redis, newest first; ``box`` seals each secret on write and opens it on read."""

    def __init__(self, redis: Redis, box: SecretBox) -> None:
        self.records, self.box = Collection(redis, keys.WEBHOOK, SealedWebhook), box

    async def create(self, hook: Webhook) -> bool:
        """Store a new subscription; False (and nothing written) when its id exists."""
        sealed = SealedWebhook(**hook.model_dump(exclude={"secret"}), sealed_secret=self.box.seal(hook.secret))
        return await self.records.create(sealed)

    async def get(self, webhook_id: str) -> Webhook | None:
        record = await self.records.get(webhook_id)
        return self._open(record) if record else None

    async def list(self, limit: int = 50, offset: int = 0) -> list[Webhook]:
        return [self._open(record) for record in await self.records.list(limit, offset)]

    async def remove(self, webhook_id: str) -> bool:
        """Delete a subscription; False when there was none."""
        return await self.records.remove(webhook_id)

    async def reseal(self) -> int:
        """Seal every stored secret again under the box's first key (after a new key was put first), so that the
        older keys can be dropped; the number of subscriptions resealed. ``UnreadableSecret`` when a secret opens
        under none of the keys (that one is left as it was)."""
        count = await self.records.count()
        resealed = 0
        for record in await self.records.list(limit=count) if count else []:
            changed = await self.records.update(
                record.id, lambda r: r.model_copy(update={"sealed_secret": self.box.reseal(r.sealed_secret)})
            )
            resealed += changed is not None
        return resealed

    def _open(self, record: SealedWebhook) -> Webhook:
        return Webhook(**record.model_dump(exclude={"sealed_secret"}), secret=self.box.open(record.sealed_secret))


def webhooks(redis: Redis, box: SecretBox | None = None) -> Webhooks:
    """The subscriptions on ``redis``, their secrets sealed by ``box`` (the process's installed one by default)."""
    return Webhooks(redis, box or SecretBox.installed())


async def register(redis: Redis, request: WebhookCreate, policy: EgressPolicy | None = None) -> Webhook:
    """Store a subscription; with a ``policy``, refuse (``ForbiddenDestination``) a receiver it does not allow."""
    if policy is not None:
        await policy.check_registration(str(request.url))
    hook = Webhook(
        id=f"wh-{uuid.uuid4().hex[:12]}",
        url=str(request.url),
        event_types=request.event_types,
        secret=request.secret or new_secret(),
    )
    await webhooks(redis).create(hook)
    return hook


async def unregister(redis: Redis, webhook_id: str) -> bool:
    """Delete a subscription; False when there was none. Its dead letters stay listed but cannot be replayed."""
    return await webhooks(redis).remove(webhook_id)


def signed_headers(hook: Webhook, message_id: str, body: str) -> dict[str, str]:
    """Standard Webhooks headers for ``body``; :class:`BadSecret` when the hook's secret breaks the rule."""
    timestamp = _now()
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Signer(checked_secret(hook.secret)).sign(message_id, timestamp, body),
    }


class Dispatcher:
    """Records an event for every subscribed webhook in the ``outbox``; delivers what the outbox holds, logging each
    attempt and dead-lettering what it gives up.

    ``policy`` decides which receivers may be reached; the default refuses every non-public address. Attempts,
    deliveries, dead letters and replays are counted on ``metrics`` (the process's unless given).
    """

    def __init__(
        self,
        redis: Redis,
        attempts: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        policy: EgressPolicy | None = None,
        metrics: FeedbackMetrics | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        self.redis, self.attempts, self.backoff_s, self.timeout_s = redis, attempts, backoff_s, timeout_s
        self.policy = policy or EgressPolicy()
        self.metrics = metrics or FeedbackMetrics.default()
        self.outbox = outbox or Outbox(redis)

    async def log(self, limit: int = 100) -> list[Delivery]:
        return [Delivery.model_validate_json(r) for r in await self.redis.lrange(keys.DELIVERIES, 0, limit - 1)]

    async def dispatch(self, event_type: str, message_id: str, data: dict) -> list[str]:
        """Record a delivery for each subscriber neither served, dead-lettered nor waiting for ``message_id``;
        return their webhook ids. Nothing is sent here: the delivery loops send it."""
        body = json.dumps({"type": event_type, "timestamp": _now().isoformat(), "data": data})
        queued = []
        for hook in await webhooks(self.redis).list(limit=1000):
            if not hook.wants(event_type) or await self._settled(hook.id, message_id):
                continue
            pending = Pending(webhook_id=hook.id, message_id=message_id, event_type=event_type, body=body)
            if await self.outbox.put(pending):
                queued.append(hook.id)
        return queued

    async def deliver(self, pending: Pending) -> Delivery | None:
        """Deliver a claimed delivery, with its retries, then take it out of the outbox: marked delivered or
        dead-lettered; None (nothing sent) when its webhook is gone or the message was settled meanwhile."""
        hook = await webhooks(self.redis).get(pending.webhook_id)
        delivery = None
        if hook is not None and not await self._settled(hook.id, pending.message_id):
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                delivery = await self._deliver(client, hook, pending.event_type, pending.message_id, pending.body)
            if delivery.ok:
                await self.redis.set(keys.delivered(hook.id, pending.message_id), delivery.model_dump_json())
            else:
                await self._bury(hook, delivery, pending.body)
        await self.outbox.done(pending)
        return delivery

    async def replay(self, letter_id: str) -> DeadLetter | None:
        """Deliver a dead letter now, once: its state says whether it went through (``replayed``) or failed
        again (``dead``, with the new error). None when there is no such letter; ``ReplayRefused`` when it
        was replayed already, a replay is in flight, or its webhook was deleted."""
        letter = await dead_letters(self.redis).get(letter_id)
        if letter is None:
            return None
        claim = keys.dead_letter_claim(letter_id)
        if not await self.redis.set(claim, 1, nx=True, px=int((self.timeout_s + 10) * 1000)):
            raise ReplayRefused(letter_id, "a replay of it is in flight")
        try:
            letter = await dead_letters(self.redis).get(letter_id) or letter
            if letter.state == DeadLetterState.REPLAYED:
                raise ReplayRefused(letter_id, f"already replayed at {letter.replayed_at:%Y-%m-%dT%H:%M:%SZ}")
            hook = await webhooks(self.redis).get(letter.webhook_id)
            if hook is None:
                raise ReplayRefused(letter_id, f"webhook {letter.webhook_id} no longer exists")
            done = keys.delivered(hook.id, letter.message_id)
            if not await self.redis.exists(done):
                async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                    body, number = json.dumps(letter.payload), letter.attempts + 1
                    delivery, _ = await self._attempt(client, hook, letter.event_type, letter.message_id, body, number)
                letter.attempts += 1
                self.metrics.webhook_replays.labels("delivered" if delivery.ok else "failed").inc()
                if not delivery.ok:
                    letter.last_error = delivery.error
                    await dead_letters(self.redis).save(letter)
                    return letter
                await self.redis.set(done, delivery.model_dump_json())
            letter.state, letter.replayed_at = DeadLetterState.REPLAYED, _now()
            await dead_letters(self.redis).save(letter)
            return letter
        finally:
            await self.redis.delete(claim)

    async def _settled(self, webhook_id: str, message_id: str) -> bool:
        return bool(await self.redis.exists(keys.delivered(webhook_id, message_id))) or await is_dead(
            self.redis, webhook_id, message_id
        )

    async def _bury(self, hook: Webhook, delivery: Delivery, body: str) -> None:
        letter = DeadLetter(
            id=dead_letter_id(hook.id, delivery.message_id),
            webhook_id=hook.id,
            message_id=delivery.message_id,
            event_type=delivery.event_type,
            payload=json.loads(body),
            attempts=delivery.attempt,
            last_error=delivery.error,
        )
        await bury(self.redis, letter)
        self.metrics.webhook_dead_letters.labels(delivery.event_type).inc()

    async def _deliver(
        self, client: httpx.AsyncClient, hook: Webhook, event_type: str, message_id: str, body: str
    ) -> Delivery:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(multiplier=self.backoff_s, max=30, jitter=self.backoff_s / 2),
            retry=retry_if_exception_type(DeliveryFailed),
        )
        delivery: Delivery | None = None
        refused = False
        try:
            async for attempt in retrying:
                with attempt:
                    number = attempt.retry_state.attempt_number
                    delivery, retryable = await self._attempt(client, hook, event_type, message_id, body, number)
                    refused = not retryable
                    if not refused:  # a refused receiver or an unsigned message was sent nothing
                        self.metrics.webhook_attempts.labels("delivered" if delivery.ok else "failed").inc()
                    if not delivery.ok and retryable:
                        raise DeliveryFailed(delivery.error)
        except RetryError:
            pass
        assert delivery is not None
        self.metrics.webhook_deliveries.labels("delivered" if delivery.ok else "refused" if refused else "failed").inc()
        return delivery

    async def _post(self, client: httpx.AsyncClient, hook: Webhook, message_id: str, body: str) -> httpx.Response:
        """POST to the receiver at an address the policy checked, trying the next one when a connection fails."""
        headers = signed_headers(hook, message_id, body)
        addresses = await self.policy.resolve(hook.url)
        if addresses is None:
            return await client.post(hook.url, content=body, headers=headers)
        for address in addresses[:-1]:
            url, extra, extensions = pinned(hook.url, address)
            with contextlib.suppress(httpx.ConnectError):
                return await client.post(url, content=body, headers={**headers, **extra}, extensions=extensions)
        url, extra, extensions = pinned(hook.url, addresses[-1])
        return await client.post(url, content=body, headers={**headers, **extra}, extensions=extensions)

    async def _attempt(
        self, client: httpx.AsyncClient, hook: Webhook, event_type: str, message_id: str, body: str, number: int
    ) -> tuple[Delivery, bool]:
        """One signed POST, logged: (the delivery, whether a failure is worth retrying)."""
        started = time.perf_counter()
        status, error, retryable = None, None, True
        try:
            response = await self._post(client, hook, message_id, body)
            status = response.status_code
            error = None if response.is_success else f"receiver answered {status}"
        except ForbiddenDestination as exc:
            error, retryable = f"refused: {exc}", False
        except BadSecret as exc:
            error, retryable = f"not signed: {exc}", False
        except (httpx.HTTPError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency = time.perf_counter() - started
        self.metrics.webhook_seconds.observe(latency)
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
        await self.redis.lpush(keys.DELIVERIES, delivery.model_dump_json())
        await self.redis.ltrim(keys.DELIVERIES, 0, LOG_LENGTH - 1)
        return delivery, retryable
