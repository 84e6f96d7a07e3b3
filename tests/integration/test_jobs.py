"""Job lifecycle on a real Redis, broker and webhook receiver: leases and takeover, cancellation,
bounded retries, the approval gate and exactly-once publication."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from driftloop.kafka import ensure_topics
from driftloop.receiver import WebhookReceiver
from driftloop.settings import Settings
from driftloop.traffic import shifted_stream
from feedback import Dispatcher, JobRunner, WebhookCreate, jobs, register
from feedback.egress import EgressPolicy
from feedback.jobs import ACTIVE_KEY, submit
from feedback.leases import Lease, LeaseLost, holder
from feedback.publishing import KafkaSend, Publisher, publications
from feedback.storage import DatasetStore
from feedback.sweeper import sweep
from monitor import DriftIncident, Evidence
from monitor.redact import redact
from tests.integration.helpers import topic_messages

pytestmark = pytest.mark.integration
T = TypeVar("T")


def incident(incident_id: str = "inc-1") -> DriftIncident:
    """An attack-wave incident whose evidence is real (redacted) traffic, as the monitor writes it."""
    events = list(shifted_stream(16, None, seed=3))
    return DriftIncident(
        id=incident_id,
        kind="attack-wave",
        segment="gpt-4o-mini/chat/acme",
        features=[],
        detected_after_events=400,
        onset_event=300,
        evidence=[Evidence(prompt=redact(e["prompt"][:400]), response=redact(e["response"][:200])) for e in events],
    )


@asynccontextmanager
async def services(settings: Settings) -> AsyncIterator[tuple[Redis, KafkaSend]]:
    redis, send = Redis.from_url(settings.redis_url), KafkaSend(settings.kafka_bootstrap, settings.finetune_topic)
    try:
        yield redis, send
    finally:
        await send.close()
        await redis.aclose()


def runner(redis: Redis, send: KafkaSend, data_dir: Path, owner: str, **options: object) -> JobRunner:
    dispatcher = Dispatcher(redis, attempts=2, backoff_s=0.05, policy=EgressPolicy(allow_private=True))
    return JobRunner(
        redis,
        DatasetStore(data_dir / "datasets"),
        Publisher(redis, send, dispatcher),
        dispatcher,
        samples_per_job=60,
        owner=owner,
        **options,
    )


def run(settings: Settings, scenario: Callable[[Redis, KafkaSend], Awaitable[T]]) -> T:
    async def go() -> T:
        async with services(settings) as (redis, send):
            return await scenario(redis, send)

    return asyncio.run(go())


def subscribe(settings: Settings, receiver: WebhookReceiver, *event_types: str) -> None:
    async def go(redis: Redis, _: KafkaSend) -> None:
        receiver.secret = (await register(redis, WebhookCreate(url=receiver.url, event_types=list(event_types)))).secret

    run(settings, go)


def finetune_ids(settings: Settings) -> list[str]:
    return [message["id"] for message in topic_messages(settings, settings.finetune_topic, idle_ms=1000)]


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_one_job_per_incident_and_one_announcement(settings: Settings) -> None:
    ensure_topics(settings)
    with WebhookReceiver(secret=None) as receiver:
        subscribe(settings, receiver, "incident.opened", "dataset.published")

        async def scenario(redis: Redis, send: KafkaSend) -> list:
            worker = runner(redis, send, settings.data_dir, "worker-a")
            return [await worker.handle(incident()) for _ in range(2)]

        first, second = run(settings, scenario)
    assert first.state == "succeeded" and second.model_dump() == first.model_dump()
    assert first.attempts == 1 and first.lease_owner is None and first.started_at and first.finished_at
    assert [(r.payload["type"], r.message_id) for r in receiver.received] == [
        ("incident.opened", "inc-1"),
        ("dataset.published", first.dataset_id),
    ]
    assert all(r.verified for r in receiver.received)
    assert finetune_ids(settings) == [first.dataset_id]


def test_a_dead_workers_job_is_taken_over_after_its_lease(settings: Settings) -> None:
    ensure_topics(settings)
    takeovers = counter("driftloop_job_takeovers_total")

    async def scenario(redis: Redis, send: KafkaSend) -> tuple:
        dead = runner(redis, send, settings.data_dir, "worker-a", lease_s=0.5)
        alive = runner(redis, send, settings.data_dir, "worker-b", lease_s=0.5)
        job = await submit(redis, incident(), "attack-wave")
        claim = await dead.take(job.id)  # worker a takes the job, then dies: it never works nor renews
        assert claim is not None
        taken = await jobs(redis).get(job.id)
        assert (taken.state, taken.lease_owner, taken.attempts) == ("running", "worker-a", 1)
        assert await sweep(alive) == [], "a live lease keeps the job with its owner"
        await asyncio.sleep(0.7)
        [swept] = await sweep(alive)
        # Worker a wakes up: every write it tries is fenced off, so it publishes nothing.
        zombie = await dead.execute(claim)
        return swept, zombie, await holder(redis, job.id), await redis.smembers(ACTIVE_KEY)

    swept, zombie, lease, active = run(settings, scenario)
    assert swept.state == "succeeded" and swept.attempts == 2 and swept.dataset_id
    assert zombie.model_dump() == swept.model_dump()
    assert lease is None and active == set()
    assert counter("driftloop_job_takeovers_total") == takeovers + 1
    assert finetune_ids(settings) == [swept.dataset_id]


def test_a_lease_is_renewed_while_its_owner_works(settings: Settings) -> None:
    async def scenario(redis: Redis, _: KafkaSend) -> list[bool]:
        mine, theirs = Lease(redis, "job-x", "a", 0.3), Lease(redis, "job-x", "b", 0.3)
        assert await mine.acquire()
        async with mine.kept():
            taken = [await theirs.acquire() for _ in range(4) if not await asyncio.sleep(0.2)]
        await mine.release()
        with pytest.raises(LeaseLost):
            await mine.write("driftloop:x", "1")
        return [*taken, await theirs.acquire()]

    assert run(settings, scenario) == [False, False, False, False, True]


def test_a_cancelled_running_job_never_publishes(settings: Settings, client: TestClient) -> None:
    ensure_topics(settings)
    with WebhookReceiver(secret=None) as receiver:
        subscribe(settings, receiver, "dataset.published")

        async def scenario(redis: Redis, send: KafkaSend) -> tuple:
            worker = runner(redis, send, settings.data_dir, "worker-a")
            job = await submit(redis, incident(), "attack-wave")
            claim = await worker.take(job.id)
            response = await asyncio.to_thread(client.post, f"/v1/jobs/{job.id}/cancel")
            assert response.status_code == 202 and response.json()["cancel_requested"] is True
            running = (await asyncio.to_thread(client.get, f"/v1/jobs/{job.id}")).json()
            assert running["cancel_requested"] is True and running["lease_owner"] == "worker-a"
            assert running["state"] == "running" and running["lease_expires_at"]
            return await worker.execute(claim), await publications(redis).list()

        job, published = run(settings, scenario)
    assert job.state == "cancelled" and job.error == "cancelled before its dataset was written"
    assert published == [] and receiver.received == [] and finetune_ids(settings) == []
    again = client.post(f"/v1/jobs/{job.id}/cancel")
    assert again.status_code == 200 and again.json()["state"] == "cancelled"


def test_a_cancelled_job_whose_worker_died_is_ended_by_the_sweeper(settings: Settings, client: TestClient) -> None:
    ensure_topics(settings)

    async def take(redis: Redis, send: KafkaSend) -> str:
        job = await submit(redis, incident(), "attack-wave")
        assert await runner(redis, send, settings.data_dir, "worker-a", lease_s=0.5).take(job.id)
        return job.id  # and worker a dies holding the lease

    job_id = run(settings, take)
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202

    async def later(redis: Redis, send: KafkaSend) -> list:
        await asyncio.sleep(0.7)
        return await sweep(runner(redis, send, settings.data_dir, "worker-b"))

    [job] = run(settings, later)
    assert job.state == "cancelled" and job.error == "cancelled before it ran" and job.dataset_id is None
    assert finetune_ids(settings) == []


def test_a_queued_job_is_cancelled_at_once_and_a_finished_one_not_at_all(
    settings: Settings, client: TestClient
) -> None:
    async def scenario(redis: Redis, send: KafkaSend) -> tuple:
        queued = await submit(redis, incident("inc-q"), "attack-wave")
        done = await runner(redis, send, settings.data_dir, "worker-a").handle(incident("inc-d"))
        return queued.id, done.id

    queued, done = run(settings, scenario)
    cancelled = client.post(f"/v1/jobs/{queued}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["finished_at"] and cancelled.json()["error"] == "cancelled before it ran"
    refused = client.post(f"/v1/jobs/{done}/cancel")
    assert refused.status_code == 409 and "already succeeded" in refused.text
    assert client.post("/v1/jobs/nope/cancel").status_code == 404

    async def rerun(redis: Redis, send: KafkaSend) -> list:
        return await sweep(runner(redis, send, settings.data_dir, "worker-b"))

    assert run(settings, rerun) == [], "neither job is left for the sweeper"
    assert client.get(f"/v1/jobs/{queued}").json()["state"] == "cancelled"


def test_retries_are_bounded_and_end_in_failed(settings: Settings, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("datasets cannot be written under a file")
    with WebhookReceiver(secret=None) as receiver:
        subscribe(settings, receiver, "job.failed")

        async def scenario(redis: Redis, send: KafkaSend) -> list:
            worker = runner(redis, send, blocked, "worker-a", max_attempts=2)
            first = await worker.handle(incident())
            [second] = await sweep(worker)
            return [first, second, await sweep(worker)]

        first, second, third = run(settings, scenario)
    assert (first.state, first.attempts) == ("queued", 1) and first.error.startswith("attempt 1 of 2: ")
    assert (second.state, second.attempts) == ("failed", 2) and second.error.startswith("attempt 2 of 2: ")
    assert third == []
    [announced] = receiver.received
    assert announced.message_id == second.id and announced.payload["type"] == "job.failed"
    assert announced.payload["data"]["error"] == second.error


def test_the_approval_gate_holds_then_publishes_exactly_once(settings: Settings, client: TestClient) -> None:
    ensure_topics(settings)
    with WebhookReceiver(secret=None) as receiver:
        subscribe(settings, receiver, "dataset.published")

        async def scenario(redis: Redis, send: KafkaSend) -> object:
            return await runner(redis, send, settings.data_dir, "worker-a", require_approval=True).handle(incident())

        job = run(settings, scenario)
        assert job.state == "succeeded" and job.dataset_id
        held = client.get(f"/v1/datasets/{job.dataset_id}/publication").json()
        assert held["state"] == "pending_approval" and held["job_id"] == job.id
        assert [p["id"] for p in client.get("/v1/publications?state=pending_approval").json()] == [job.dataset_id]
        assert finetune_ids(settings) == [] and receiver.received == []

        approved = client.post(f"/v1/datasets/{job.dataset_id}/approve")
        assert approved.status_code == 200, approved.text
        assert approved.json()["state"] == "published" and approved.json()["approved_at"]
        again = client.post(f"/v1/datasets/{job.dataset_id}/approve")
        assert again.status_code == 200 and again.json() == approved.json()
        assert client.post("/v1/datasets/ds-nope/approve").status_code == 404
    assert finetune_ids(settings) == [job.dataset_id]
    assert [(r.message_id, r.verified) for r in receiver.received] == [(job.dataset_id, True)]
    assert client.get("/v1/publications?state=pending_approval").json() == []


def test_a_version_published_without_the_gate_cannot_be_approved(settings: Settings, client: TestClient) -> None:
    ensure_topics(settings)

    async def scenario(redis: Redis, send: KafkaSend) -> object:
        return await runner(redis, send, settings.data_dir, "worker-a").handle(incident())

    job = run(settings, scenario)
    assert client.get(f"/v1/datasets/{job.dataset_id}/publication").json()["state"] == "published"
    assert client.post(f"/v1/datasets/{job.dataset_id}/approve").json()["state"] == "published"
    assert finetune_ids(settings) == [job.dataset_id]
