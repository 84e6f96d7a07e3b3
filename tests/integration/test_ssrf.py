"""Webhook receivers at non-public addresses are refused at registration and, after DNS, at delivery."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from devtools.receiver import WebhookReceiver
from driftloop.settings import Settings
from feedback import Dispatcher, WebhookCreate, register
from feedback.dead_letters import dead_letters
from feedback.egress import EgressPolicy

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The tests' settings with the production default: private networks not allowed."""
    return settings.model_copy(update={"webhook_allow_private_networks": False})


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080/hooks", "loopback"),
        ("http://localhost:8080/hooks", "loopback"),
        ("http://[::1]/hooks", "loopback"),
        ("http://[::ffff:127.0.0.1]/hooks", "loopback"),
        ("http://10.1.2.3/hooks", "private"),
        ("http://192.168.0.10/hooks", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://0.0.0.0:8000/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
    ],
)
def test_registration_refuses_non_public_receivers(client: TestClient, url: str, reason: str) -> None:
    refused = client.post("/v1/webhooks", json={"url": url})
    assert refused.status_code == 422, refused.text
    assert reason in refused.text and "DRIFTLOOP_WEBHOOK_ALLOW_PRIVATE_NETWORKS" in refused.text
    assert client.get("/v1/webhooks").json() == []


def test_registration_accepts_public_receivers(client: TestClient) -> None:
    assert client.post("/v1/webhooks", json={"url": "https://93.184.215.14/hooks"}).status_code == 201
    # A name that does not resolve here is accepted; delivery resolves and checks it again.
    assert client.post("/v1/webhooks", json={"url": "https://training.example.com/hooks"}).status_code == 201


def deliver(settings: Settings, url: str, policy: EgressPolicy) -> tuple[list, list]:
    """Register ``url`` as stored earlier (no check), dispatch and deliver under ``policy``: (final attempts, dead
    letters)."""

    async def go() -> tuple[list, list]:
        redis = Redis.from_url(settings.redis_url)
        try:
            await register(redis, WebhookCreate(url=url, event_types=["job.failed"]))
            sender = Dispatcher(redis, attempts=3, backoff_s=0.05, policy=policy)
            await sender.dispatch("job.failed", "job-1", {"job_id": "job-1"})
            sent = [await sender.deliver(pending) for pending in await sender.outbox.claim(10)]
            return sent, await dead_letters(redis).list()
        finally:
            await redis.aclose()

    return asyncio.run(go())


def test_delivery_resolves_the_name_and_refuses_a_loopback_address(settings: Settings) -> None:
    with WebhookReceiver(secret=None) as receiver:
        url = receiver.url.replace("127.0.0.1", "localhost")  # a DNS name that resolves to 127.0.0.1
        [refused], [letter] = deliver(settings, url, EgressPolicy())
    assert receiver.requests == 0, "nothing was sent"
    assert not refused.ok and refused.attempt == 1, "a refused destination is not retried"
    assert refused.error.startswith("refused:") and "localhost (127.0.0.1)" in refused.error
    assert letter.message_id == "job-1" and letter.last_error == refused.error


def test_allowed_networks_and_hosts_let_private_receivers_through(settings: Settings) -> None:
    with WebhookReceiver(secret=None) as receiver:
        [by_network], _ = deliver(settings, receiver.url, EgressPolicy.parse(False, "127.0.0.0/8"))
    with WebhookReceiver(secret=None) as other:
        url = other.url.replace("127.0.0.1", "localhost")
        [by_host], _ = deliver(settings, url, EgressPolicy.parse(False, "localhost"))
    assert by_network.ok and by_host.ok
    assert [r.message_id for r in receiver.received + other.received] == ["job-1", "job-1"]
