"""Signed deliveries to real HTTP receivers through the outbox, retries, dead letters and their replay, on a real
Redis. Deliveries are recorded by ``dispatch`` and sent by a delivery loop: the API's, in the tests with a client."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from standardwebhooks import Webhook, WebhookVerificationError

from devtools.receiver import WebhookReceiver
from driftloop.settings import Settings
from feedback import Dispatcher, WebhookCreate, register
from feedback.deps import dispatcher
from feedback.egress import EgressPolicy
from feedback.outbox import DeliveryLoop, Outbox
from feedback.webhooks import SECRET_RULE, signed_headers
from tests.integration.helpers import drained, store_unchecked_webhook, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The tests' settings with three attempts of at most a second each."""
    return settings.model_copy(update={"webhook_attempts": 3, "webhook_timeout_s": 1.0})


def record(settings: Settings, message_id: str = "ds-1") -> list[str]:
    """Dispatch ``dataset.published`` for ``message_id`` (and an unsubscribed type): the webhooks it was recorded
    for."""

    async def go() -> list[str]:
        redis = Redis.from_url(settings.redis_url)
        try:
            sender = dispatcher(redis, settings)
            queued = await sender.dispatch("dataset.published", message_id, {"dataset_id": message_id})
            assert await sender.dispatch("job.failed", "job-1", {"job": "not subscribed"}) == []
            return queued
        finally:
            await redis.aclose()

    return asyncio.run(go())


def dispatch(settings: Settings, message_id: str = "ds-1") -> list[str]:
    """:func:`record`, then wait until the API's delivery loop has delivered or dead-lettered it."""
    queued = record(settings, message_id)
    drained(settings)
    return queued


def webhook_counts() -> Counter[str]:
    """This process's webhook counters (the API's delivery loop counts on them), as ``name{label}``."""
    return Counter(
        {
            f"{sample.name}{{{','.join(sample.labels.values())}}}": sample.value
            for metric in REGISTRY.collect()
            if metric.name.startswith("driftloop_webhook")
            for sample in metric.samples
            if sample.name.endswith("_total")
        }
    )


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
    before = webhook_counts()
    with WebhookReceiver(secret=None, fail_next=2) as receiver:
        hook_id = subscribe(client, receiver)
        assert dispatch(settings) == [hook_id]
        assert dispatch(settings) == [], "a delivered message is not recorded again"
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
    counted = webhook_counts() - before
    assert counted["driftloop_webhook_attempts_total{failed}"] == 2
    assert counted["driftloop_webhook_attempts_total{delivered}"] == 1
    assert counted["driftloop_webhook_deliveries_total{delivered}"] == 1, "one delivery of three attempts"


def test_a_dead_receiver_gets_its_retries_then_a_dead_letter_replayed_exactly_once(
    settings: Settings, client: TestClient
) -> None:
    before = webhook_counts()
    with WebhookReceiver(secret=None, fail_next=3) as receiver:
        hook_id = subscribe(client, receiver)
        assert dispatch(settings) == [hook_id]
        final = log(settings)[0]
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
        counted = webhook_counts() - before
        assert counted["driftloop_webhook_dead_letters_total{dataset.published}"] == 1
        assert counted["driftloop_webhook_attempts_total{failed}"] == 3
        assert counted["driftloop_webhook_deliveries_total{failed}"] == 1

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
        dispatch(settings)
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
        dispatch(settings)
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


def key(size: int) -> str:
    return "whsec_" + base64.b64encode(b"k" * size).decode()


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("x", "does not start with whsec_"),
        ("whsec_", "this one has 0"),
        ("whsec_AA==", "this one has 1"),
        (key(1), "this one has 1"),
        (key(23), "this one has 23"),
        ("whsec_" + "!" * 32, "is not base64"),
    ],
)
def test_registration_refuses_a_secret_that_breaks_the_rule(client: TestClient, secret: str, why: str) -> None:
    refused = client.post("/v1/webhooks", json={"url": "https://93.184.215.14/hooks", "secret": secret})
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    [error] = refused.json()["errors"]
    assert error["loc"] == ["body", "secret"] and SECRET_RULE in error["msg"] and why in error["msg"]
    assert client.get("/v1/webhooks").json() == []


def test_registration_keeps_a_secret_that_follows_the_rule(client: TestClient) -> None:
    created = client.post("/v1/webhooks", json={"url": "https://93.184.215.14/hooks", "secret": key(32)})
    assert created.status_code == 201 and created.json()["secret"] == key(32)


def test_a_receiver_whose_stored_secret_cannot_sign_fails_alone(settings: Settings, client: TestClient) -> None:
    before = webhook_counts()
    with WebhookReceiver(secret=None) as good, WebhookReceiver(secret=None) as poisoned:
        good_id = subscribe(client, good)
        poisoned_id = store_unchecked_webhook(
            settings, poisoned.url, "x", ("dataset.published",)
        )  # the newest: tried first
        assert dispatch(settings) == [poisoned_id, good_id]
    [received] = good.received
    assert received.verified and received.message_id == "ds-1"
    assert poisoned.requests == 0, "nothing unsigned was sent"
    [letter] = client.get("/v1/webhooks/dead-letters").json()
    assert (letter["webhook_id"], letter["message_id"], letter["attempts"]) == (poisoned_id, "ds-1", 1)
    assert letter["last_error"] == f"not signed: {SECRET_RULE}; this one does not start with whsec_"
    counted = webhook_counts() - before
    assert counted["driftloop_webhook_deliveries_total{delivered}"] == 1
    assert counted["driftloop_webhook_deliveries_total{refused}"] == 1
    assert counted["driftloop_webhook_dead_letters_total{dataset.published}"] == 1
    assert counted["driftloop_webhook_attempts_total{delivered}"] == 1, "the unsigned message is no attempt"
    replayed = client.post(f"/v1/webhooks/dead-letters/{letter['id']}/replay")
    assert replayed.status_code == 502 and "not signed" in replayed.text


def test_a_slow_receiver_does_not_delay_a_fast_one(settings: Settings, client: TestClient) -> None:
    with WebhookReceiver(secret=None) as fast, WebhookReceiver(secret=None, delay_s=3.0) as slow:
        fast_id = subscribe(client, fast)
        slow_id = subscribe(client, slow)  # the newest: tried first
        assert record(settings) == [slow_id, fast_id]
        wait_for(lambda: fast.received, 2.0, "the fast receiver's delivery", every=0.05)
        assert client.get("/v1/webhooks/dead-letters").json() == [], "the slow receiver is still being tried"
        drained(settings)
    assert [(r.message_id, r.verified) for r in fast.received] == [("ds-1", True)]
    [letter] = client.get("/v1/webhooks/dead-letters").json()
    assert letter["webhook_id"] == slow_id and letter["attempts"] == 3 and "ReadTimeout" in letter["last_error"]


def test_a_delivery_claimed_by_a_process_that_died_is_retaken_after_its_lease(settings: Settings) -> None:
    async def go(receiver: WebhookReceiver) -> None:
        redis = Redis.from_url(settings.redis_url)
        try:
            hook = await register(redis, WebhookCreate(url=receiver.url, event_types=["dataset.published"]))
            receiver.secret = hook.secret
            outbox = Outbox(redis, lease_s=1.0)
            sender = Dispatcher(redis, attempts=1, policy=EgressPolicy(allow_private=True), outbox=outbox)
            assert await sender.dispatch("dataset.published", "ds-1", {"dataset_id": "ds-1"}) == [hook.id]
            assert await sender.dispatch("dataset.published", "ds-1", {}) == [], "one delivery per webhook and message"
            assert len(await outbox.claim(10)) == 1  # a process claims it, then dies
            async with DeliveryLoop(Outbox(redis, lease_s=1.0), sender.deliver, poll_s=0.05).running():
                await asyncio.sleep(0.5)
                assert receiver.requests == 0, "nobody takes a delivery while its lease lasts"
                await asyncio.sleep(1.0)
            assert await outbox.size() == 0
        finally:
            await redis.aclose()

    with WebhookReceiver(secret=None) as receiver:
        asyncio.run(go(receiver))
    assert [(r.message_id, r.verified) for r in receiver.received] == [("ds-1", True)]
