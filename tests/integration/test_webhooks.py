"""Signed deliveries to a real HTTP receiver, retries and the delivery log, on a real Redis."""

from __future__ import annotations

import asyncio
import json

import pytest
from redis.asyncio import Redis
from standardwebhooks import Webhook, WebhookVerificationError

from driftloop.receiver import WebhookReceiver
from driftloop.settings import Settings
from feedback import Dispatcher, WebhookCreate, register
from feedback.webhooks import signed_headers

pytestmark = pytest.mark.integration


async def dispatch_to(settings: Settings, receiver: WebhookReceiver, attempts: int, times: int = 1) -> list:
    redis = Redis.from_url(settings.redis_url)
    try:
        hook = await register(redis, WebhookCreate(url=receiver.url, event_types=["dataset.published"]))
        receiver.secret = hook.secret
        dispatcher = Dispatcher(redis, attempts=attempts, backoff_s=0.05)
        for _ in range(times):
            await dispatcher.dispatch("dataset.published", "ds-1", {"dataset_id": "ds-1"})
            await dispatcher.dispatch("job.failed", "job-1", {"job": "not subscribed"})
        return await dispatcher.log()
    finally:
        await redis.aclose()


def test_a_flaky_receiver_gets_retries_then_exactly_one_delivery(settings: Settings) -> None:
    with WebhookReceiver(secret=None, fail_next=2) as receiver:
        log = asyncio.run(dispatch_to(settings, receiver, attempts=5, times=2))
    assert [(d.attempt, d.status_code, d.ok) for d in reversed(log)] == [
        (1, 503, False),
        (2, 503, False),
        (3, 204, True),
    ]
    assert receiver.requests == 3, "the second dispatch of the same message sent nothing"
    [received] = receiver.received
    assert received.verified and received.message_id == "ds-1"
    assert received.payload["type"] == "dataset.published" and received.payload["data"] == {"dataset_id": "ds-1"}


def test_a_dead_receiver_is_given_up_after_the_last_attempt(settings: Settings) -> None:
    with WebhookReceiver(secret=None, fail_next=100) as receiver:
        log = asyncio.run(dispatch_to(settings, receiver, attempts=3))
    assert [d.attempt for d in reversed(log)] == [1, 2, 3]
    assert not any(d.ok for d in log) and all(d.error == "receiver answered 503" for d in log)


def test_signatures_verify_and_tampering_fails() -> None:
    from feedback.webhooks import Webhook as Hook

    hook = Hook(
        id="wh-1", url="http://127.0.0.1:1/", event_types=["*"], secret="whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    )
    body = json.dumps({"type": "dataset.published", "data": {"rows": 10}})
    headers = signed_headers(hook, "msg-1", body)
    assert Webhook(hook.secret).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(hook.secret).verify(body.replace("10", "11"), headers)
