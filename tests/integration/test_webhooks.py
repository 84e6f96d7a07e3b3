"""Signed deliveries to a real HTTP receiver, retries, dead letters and their replay, on a real Redis."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from standardwebhooks import Webhook, WebhookVerificationError

from devtools.receiver import WebhookReceiver
from driftloop.settings import Settings
from feedback import Dispatcher, WebhookCreate, register
from feedback.egress import EgressPolicy
from feedback.metrics import FeedbackMetrics
from feedback.webhooks import signed_headers

pytestmark = pytest.mark.integration


def dispatcher(redis: Redis, settings: Settings, attempts: int, metrics: FeedbackMetrics | None) -> Dispatcher:
    policy = EgressPolicy.parse(settings.webhook_allow_private_networks, settings.webhook_allowed_networks)
    return Dispatcher(redis, attempts=attempts, backoff_s=0.05, policy=policy, metrics=metrics)


def dispatch(
    settings: Settings, attempts: int = 3, message_id: str = "ds-1", metrics: FeedbackMetrics | None = None
) -> list:
    """Dispatch ``dataset.published`` for ``message_id`` (and an unsubscribed type), counted on ``metrics``; the
    final attempts."""

    async def go() -> list:
        redis = Redis.from_url(settings.redis_url)
        try:
            sent = await dispatcher(redis, settings, attempts, metrics).dispatch(
                "dataset.published", message_id, {"dataset_id": message_id}
            )
            await dispatcher(redis, settings, attempts, metrics).dispatch(
                "job.failed", "job-1", {"job": "not subscribed"}
            )
            return sent
        finally:
            await redis.aclose()

    return asyncio.run(go())


def counted(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def log(settings: Settings) -> list:
    async def go() -> list:
        redis = Redis.from_url(settings.redis_url)
        try:
            return await Dispatcher(redis).log()
        finally:
            await redis.aclose()

    return asyncio.run(go())


def subscribe(client: TestClient, receiver: WebhookReceiver) -> str:
    created = client.post("/v1/webhooks", json={"url": receiver.url, "event_types": ["dataset.published"]})
    assert created.status_code == 201, created.text
    receiver.secret = created.json()["secret"]
    return created.json()["id"]


def test_a_flaky_receiver_gets_retries_then_exactly_one_delivery(settings: Settings, client: TestClient) -> None:
    registry = CollectorRegistry()
    metrics = FeedbackMetrics(registry)
    with WebhookReceiver(secret=None, fail_next=2) as receiver:
        subscribe(client, receiver)
        dispatch(settings, attempts=5, metrics=metrics)
        dispatch(settings, attempts=5, metrics=metrics)
    assert [(d.attempt, d.status_code, d.ok) for d in reversed(log(settings))] == [
        (1, 503, False),
        (2, 503, False),
        (3, 204, True),
    ]
    assert receiver.requests == 3, "the second dispatch of the same message sent nothing"
    [received] = receiver.received
    assert received.verified and received.message_id == "ds-1"
    assert received.payload["type"] == "dataset.published" and received.payload["data"] == {"dataset_id": "ds-1"}
    assert client.get("/v1/webhooks/dead-letters").json() == []
    assert counted(registry, "driftloop_webhook_attempts_total", outcome="failed") == 2
    assert counted(registry, "driftloop_webhook_attempts_total", outcome="delivered") == 1
    assert counted(registry, "driftloop_webhook_deliveries_total", outcome="delivered") == 1, (
        "one delivery of three attempts"
    )


def test_a_dead_receiver_gets_its_retries_then_a_dead_letter_replayed_exactly_once(
    settings: Settings, client: TestClient
) -> None:
    registry = CollectorRegistry()
    with WebhookReceiver(secret=None, fail_next=3) as receiver:
        hook_id = subscribe(client, receiver)
        [final] = dispatch(settings, attempts=3, metrics=FeedbackMetrics(registry))
        assert not final.ok and final.attempt == 3
        assert [d.attempt for d in reversed(log(settings))] == [1, 2, 3]
        assert all(d.error == "receiver answered 503" for d in log(settings))

        [letter] = client.get("/v1/webhooks/dead-letters").json()
        assert (letter["webhook_id"], letter["message_id"], letter["event_type"]) == (
            hook_id,
            "ds-1",
            "dataset.published",
        )
        assert letter["attempts"] == 3 and letter["last_error"] == "receiver answered 503"
        assert letter["payload"]["data"] == {"dataset_id": "ds-1"} and letter["state"] == "dead" and letter["at"]
        assert counted(registry, "driftloop_webhook_dead_letters_total", event_type="dataset.published") == 1
        assert counted(registry, "driftloop_webhook_attempts_total", outcome="failed") == 3
        assert counted(registry, "driftloop_webhook_deliveries_total", outcome="failed") == 1

        assert dispatch(settings) == [], "a dead-lettered message waits for its replay"
        assert receiver.requests == 3

        # The receiver is back (fail_next used up): the replay delivers now, once.
        replayed = client.post(f"/v1/webhooks/dead-letters/{letter['id']}/replay")
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["state"] == "replayed" and replayed.json()["attempts"] == 4
        again = client.post(f"/v1/webhooks/dead-letters/{letter['id']}/replay")
        assert again.status_code == 409 and "already replayed" in again.text
        assert dispatch(settings) == []

    [received] = receiver.received
    assert received.verified and received.message_id == "ds-1"
    assert received.payload["data"] == {"dataset_id": "ds-1"}
    assert receiver.requests == 4
    assert (log(settings)[0].attempt, log(settings)[0].ok) == (4, True)
    assert client.get("/v1/webhooks/dead-letters?state=dead").json() == []
    assert [d["state"] for d in client.get("/v1/webhooks/dead-letters?state=replayed").json()] == ["replayed"]
    assert client.post("/v1/webhooks/dead-letters/dl-nope/replay").status_code == 404


def test_a_replay_to_a_receiver_still_down_keeps_the_letter(settings: Settings, client: TestClient) -> None:
    with WebhookReceiver(secret=None, fail_next=4) as receiver:
        subscribe(client, receiver)
        dispatch(settings, attempts=3)
        [letter] = client.get("/v1/webhooks/dead-letters").json()
        failed = client.post(f"/v1/webhooks/dead-letters/{letter['id']}/replay")
        assert failed.status_code == 502 and "receiver answered 503" in failed.text
        [still] = client.get("/v1/webhooks/dead-letters?state=dead").json()
        assert still["attempts"] == 4
        assert client.post(f"/v1/webhooks/dead-letters/{letter['id']}/replay").status_code == 200
    assert [r.message_id for r in receiver.received] == ["ds-1"]


def test_a_deleted_webhook_gets_nothing_more(settings: Settings, client: TestClient) -> None:
    with WebhookReceiver(secret=None, fail_next=3) as receiver:
        hook_id = subscribe(client, receiver)
        dispatch(settings, attempts=3)
        [letter] = client.get("/v1/webhooks/dead-letters").json()
        assert client.delete(f"/v1/webhooks/{hook_id}").status_code == 204
        assert client.get("/v1/webhooks").json() == []
        assert client.delete(f"/v1/webhooks/{hook_id}").status_code == 404
        assert dispatch(settings, message_id="ds-2") == []
        refused = client.post(f"/v1/webhooks/dead-letters/{letter['id']}/replay")
        assert refused.status_code == 409 and "no longer exists" in refused.text
    assert receiver.requests == 3 and receiver.received == []


def test_unknown_event_types_are_refused(client: TestClient) -> None:
    refused = client.post("/v1/webhooks", json={"url": "https://example.com/h", "event_types": ["dataset.deleted"]})
    assert refused.status_code == 422


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


def test_register_without_a_policy_stores_any_receiver(settings: Settings) -> None:
    async def go() -> str:
        redis = Redis.from_url(settings.redis_url)
        try:
            return (await register(redis, WebhookCreate(url="http://127.0.0.1:9/h"))).url
        finally:
            await redis.aclose()

    assert asyncio.run(go()) == "http://127.0.0.1:9/h"
