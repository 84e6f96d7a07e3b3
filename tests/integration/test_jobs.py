"""Job lifecycle on a real Redis, broker and webhook receiver: leases and takeover, cancellation,
bounded retries, the approval gate, exactly-once publication, and jobs that never wait on a receiver."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from core import keys
from devtools.embedded import worker_process
from devtools.receiver import WebhookReceiver
from driftloop.kafka import ensure_topics
from driftloop.settings import Settings
from feedback import WebhookCreate, jobs, register
from feedback.jobs import submit
from feedback.leases import Lease, LeaseLost, holder
from feedback.manifest import DatasetKind
from feedback.metrics import FeedbackMetrics
from feedback.publishing import KafkaSend, Publisher, publications
from monitor.records import incidents
from tests.factories import make_version, traffic_incident
from tests.integration.helpers import (
    delivering,
    drained,
    run,
    runner,
    store_unchecked_webhook,
    stored_datasets,
    swept,
    topic_messages,
    wait_for,
)

pytestmark = pytest.mark.integration


def subscribe(settings: Settings, receiver: WebhookReceiver, *event_types: str) -> None:
    async def go(redis: Redis, _: KafkaSend) -> None:
        receiver.secret = (await register(redis, WebhookCreate(url=receiver.url, event_types=list(event_types)))).secret

    run(settings, go)


def finetune_ids(settings: Settings) -> list[str]:
    return [message["id"] for message in topic_messages(settings, settings.finetune_topic, idle_ms=1000)]


def test_a_training_set_is_sent_to_fine_tuning_once_and_an_evaluation_set_never(
    settings: Settings, tmp_path: Path
) -> None:
    """The runner's tests run without an LLM endpoint (evaluation sets); a training set (fixture targets here,
    the teacher's in tests/integration/test_targets.py) goes out on finetune.requests exactly once."""
    ensure_topics(settings)
    training = make_version(tmp_path / "t")
    evaluation = make_version(tmp_path / "e", kind=DatasetKind.EVALUATION)
    with WebhookReceiver(secret=None) as receiver:
        subscribe(settings, receiver, "dataset.published")

        async def scenario(redis: Redis, send: KafkaSend) -> None:
            dispatcher = runner(redis, send, settings.data_dir, "publisher").dispatcher
            publisher = Publisher(redis, send, dispatcher, FeedbackMetrics(CollectorRegistry()))
            async with delivering(dispatcher):
                for manifest in (training, training, evaluation, evaluation):
                    await publisher.publish(manifest)

        run(settings, scenario)
    assert finetune_ids(settings) == [training.id]
    kinds = {r.message_id: r.payload["data"]["kind"] for r in receiver.received if r.verified}
    assert kinds == {training.id: "training", evaluation.id: "evaluation"} and len(receiver.received) == 2


def test_one_job_per_incident_and_one_announcement(settings: Settings) -> None:
    ensure_topics(settings)
    with WebhookReceiver(secret=None) as receiver:
        subscribe(settings, receiver, "incident.opened", "dataset.published")

        async def scenario(redis: Redis, send: KafkaSend) -> list:
            worker = runner(redis, send, settings.data_dir, "worker-a")
            async with delivering(worker.dispatcher):
                return [job for _ in range(2) for job in await worker.handle(traffic_incident(id="inc-1"))]

        first, second = run(settings, scenario)
    assert first.state == "succeeded" and second.model_dump() == first.model_dump()
    assert first.attempts == 1 and first.lease_owner is None and first.started_at and first.finished_at
    assert [(r.payload["type"], r.message_id) for r in receiver.received] == [
        ("incident.opened", "inc-1"),
        ("dataset.published", first.dataset_id),
    ]
    assert all(r.verified for r in receiver.received)
    assert finetune_ids(settings) == [], "no teacher: an evaluation set, not sent to fine-tuning"


def test_a_dead_workers_job_is_taken_over_after_its_lease(settings: Settings) -> None:
    ensure_topics(settings)
    registry = CollectorRegistry()
    metrics = FeedbackMetrics(registry)

    async def scenario(redis: Redis, send: KafkaSend) -> tuple:
        dead = runner(redis, send, settings.data_dir, "worker-a", metrics, lease_s=0.5)
        # the live worker's lease is the default: a loaded machine that stalls its loop for 0.5 s must not take
        # the job from it too, which would leave the job running (a flake once every few full runs)
        alive = runner(redis, send, settings.data_dir, "worker-b", metrics)
        job = await submit(redis, traffic_incident(), "attack-hardening")
        claim = await dead.take(job.id)  # worker a takes the job, then dies: it never works nor renews
        assert claim is not None
        taken = await jobs(redis).get(job.id)
        assert (taken.state, taken.lease_owner, taken.attempts) == ("running", "worker-a", 1)
        assert await swept(alive) == [], "a live lease keeps the job with its owner"
        await asyncio.sleep(0.7)
        [taken_over] = await swept(alive)
        # Worker a wakes up: every write it tries is fenced off, so it publishes nothing.
        zombie = await dead.execute(claim)
        return taken_over, zombie, await holder(redis, job.id), await redis.smembers(keys.JOBS_ACTIVE)

    taken_over, zombie, lease, active = run(settings, scenario)
    assert taken_over.state == "succeeded" and taken_over.attempts == 2 and taken_over.dataset_id
    assert zombie.model_dump() == taken_over.model_dump()
    assert lease is None and active == set()
    assert registry.get_sample_value("driftloop_job_takeovers_total") == 1
    assert finetune_ids(settings) == [], "no teacher: an evaluation set, not sent to fine-tuning"


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
            job = await submit(redis, traffic_incident(), "attack-hardening")
            claim = await worker.take(job.id)
            response = await asyncio.to_thread(client.post, f"/v1/jobs/{job.id}/cancel")
            assert response.status_code == 202 and response.json()["cancel_requested"] is True
            running = (await asyncio.to_thread(client.get, f"/v1/jobs/{job.id}")).json()
            assert running["cancel_requested"] is True and running["lease_owner"] == "worker-a"
            assert running["state"] == "running" and running["lease_expires_at"]
            async with delivering(worker.dispatcher):
                return await worker.execute(claim), await publications(redis).list()

        job, published = run(settings, scenario)
    assert job.state == "cancelled" and job.error == "cancelled before its dataset was written"
    assert published == [] and receiver.received == [] and finetune_ids(settings) == []
    again = client.post(f"/v1/jobs/{job.id}/cancel")
    assert again.status_code == 200 and again.json()["state"] == "cancelled"


def test_a_cancelled_job_whose_worker_died_is_ended_by_the_sweeper(settings: Settings, client: TestClient) -> None:
    ensure_topics(settings)

    async def take(redis: Redis, send: KafkaSend) -> str:
        job = await submit(redis, traffic_incident(), "attack-hardening")
        assert await runner(redis, send, settings.data_dir, "worker-a", lease_s=0.5).take(job.id)
        return job.id  # and worker a dies holding the lease

    job_id = run(settings, take)
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202

    async def later(redis: Redis, send: KafkaSend) -> list:
        await asyncio.sleep(0.7)
        return await swept(runner(redis, send, settings.data_dir, "worker-b"))

    [job] = run(settings, later)
    assert job.state == "cancelled" and job.error == "cancelled before it ran" and job.dataset_id is None
    assert finetune_ids(settings) == []


def test_a_queued_job_is_cancelled_at_once_and_a_finished_one_not_at_all(
    settings: Settings, client: TestClient
) -> None:
    async def scenario(redis: Redis, send: KafkaSend) -> tuple:
        queued = await submit(redis, traffic_incident(id="inc-q"), "attack-hardening")
        [done] = await runner(redis, send, settings.data_dir, "worker-a").handle(traffic_incident(id="inc-d"))
        return queued.id, done.id

    queued, done = run(settings, scenario)
    cancelled = client.post(f"/v1/jobs/{queued}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["finished_at"] and cancelled.json()["error"] == "cancelled before it ran"
    refused = client.post(f"/v1/jobs/{done}/cancel")
    assert refused.status_code == 409 and "already succeeded" in refused.text
    assert client.post("/v1/jobs/nope/cancel").status_code == 404

    async def rerun(redis: Redis, send: KafkaSend) -> list:
        return await swept(runner(redis, send, settings.data_dir, "worker-b"))

    assert run(settings, rerun) == [], "neither job is left for the sweeper"
    assert client.get(f"/v1/jobs/{queued}").json()["state"] == "cancelled"


def test_retries_are_bounded_and_end_in_failed(settings: Settings, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("datasets cannot be written under a file")
    with WebhookReceiver(secret=None) as receiver:
        subscribe(settings, receiver, "job.failed")

        async def scenario(redis: Redis, send: KafkaSend) -> list:
            worker = runner(redis, send, blocked, "worker-a", max_attempts=2)
            async with delivering(worker.dispatcher):
                [first] = await worker.handle(traffic_incident())
                [second] = await swept(worker)
                return [first, second, await swept(worker)]

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
            worker = runner(redis, send, settings.data_dir, "worker-a", require_approval=True)
            async with delivering(worker.dispatcher):
                [job] = await worker.handle(traffic_incident())
                return job

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
        drained(settings)  # the API's delivery loop sends what the approval recorded
    assert finetune_ids(settings) == [], "no teacher: an evaluation set, not sent to fine-tuning"
    assert [(r.message_id, r.verified) for r in receiver.received] == [(job.dataset_id, True)]
    assert client.get("/v1/publications?state=pending_approval").json() == []


def test_a_receiver_whose_stored_secret_cannot_sign_stops_no_job_and_no_approval(
    settings: Settings, client: TestClient
) -> None:
    ensure_topics(settings)
    with WebhookReceiver(secret=None) as good, WebhookReceiver(secret=None) as poisoned:
        subscribe(settings, good, "incident.opened", "dataset.published")
        poisoned_id = store_unchecked_webhook(settings, poisoned.url, "whsec_")  # written before secrets were checked

        async def scenario(redis: Redis, send: KafkaSend) -> object:
            worker = runner(redis, send, settings.data_dir, "worker-a", require_approval=True)
            async with delivering(worker.dispatcher):
                [job] = await worker.handle(traffic_incident(id="inc-1"))  # incident.opened comes before the job
                return job

        job = run(settings, scenario)
        assert job.state == "succeeded" and job.dataset_id
        approved = client.post(f"/v1/datasets/{job.dataset_id}/approve")
        assert approved.status_code == 200 and approved.json()["state"] == "published", approved.text
        drained(settings)
    assert [(r.payload["type"], r.message_id, r.verified) for r in good.received] == [
        ("incident.opened", "inc-1", True),
        ("dataset.published", job.dataset_id, True),
    ]
    assert finetune_ids(settings) == [], "no teacher: an evaluation set, not sent to fine-tuning"
    assert poisoned.requests == 0
    letters = client.get("/v1/webhooks/dead-letters").json()
    assert sorted((d["webhook_id"], d["event_type"]) for d in letters) == [
        (poisoned_id, "dataset.published"),
        (poisoned_id, "incident.opened"),
    ]
    assert all(d["last_error"].endswith("this one has 0") for d in letters)


def test_a_version_published_without_the_gate_cannot_be_approved(settings: Settings, client: TestClient) -> None:
    ensure_topics(settings)

    async def scenario(redis: Redis, send: KafkaSend) -> object:
        [job] = await runner(redis, send, settings.data_dir, "worker-a").handle(traffic_incident())
        return job

    job = run(settings, scenario)
    assert client.get(f"/v1/datasets/{job.dataset_id}/publication").json()["state"] == "published"
    assert client.post(f"/v1/datasets/{job.dataset_id}/approve").json()["state"] == "published"
    assert finetune_ids(settings) == [], "no teacher: an evaluation set, not sent to fine-tuning"


MANUAL = {
    "recipe": "edge-cases",
    "segment": "gpt-4o-mini/support/acme",
    "prompts": [
        "How do I reset my password if I no longer have access to jane.doe@acme-corp.com?",
        "Can I change the billing address on an annual plan?",
        "Why was my card charged twice this month?",
        "How do I export all my invoices as PDF?",
        "Is there a way to add a second admin to our workspace?",
        "What happens to my data when I cancel the subscription?",
    ],
    "count": 60,
    "seed": 3,
}


def test_a_manual_job_is_queued_as_a_manual_incident_and_runs_to_a_dataset(
    settings: Settings, client: TestClient
) -> None:
    ensure_topics(settings)
    headers = {"Idempotency-Key": "manual-1"}
    created = client.post("/v1/jobs", json=MANUAL, headers=headers)
    assert created.status_code == 202, created.text
    job = created.json()
    assert (job["state"], job["recipe"], job["samples"], job["seed"]) == ("queued", "edge-cases", 60, 3)
    replayed = client.post("/v1/jobs", json=MANUAL, headers=headers)
    assert replayed.headers["Idempotent-Replayed"] == "true" and replayed.json() == job
    assert client.post("/v1/jobs", json=MANUAL).json()["id"] == job["id"], "the same request names the same job"

    stored = client.get(f"/v1/incidents/{job['incident_id']}").json()
    assert stored["kind"] == "manual" and stored["segment"] == MANUAL["segment"]
    evidence = [e["prompt"] for e in stored["evidence"]]
    assert len(evidence) == 6 and "<EMAIL>" in evidence[0] and "jane.doe@acme-corp.com" not in str(stored)

    async def scenario(redis: Redis, send: KafkaSend) -> list:
        return await swept(runner(redis, send, settings.data_dir, "worker-a"))  # how every worker picks it up

    [ran] = run(settings, scenario)
    assert ran.id == job["id"] and ran.state == "succeeded", ran.error
    [dataset] = stored_datasets(settings)
    assert dataset.id == ran.dataset_id and 0 < dataset.rows <= 60
    assert (dataset.lineage.recipe, dataset.lineage.seed, dataset.lineage.incident_kind) == (
        "edge-cases",
        "3",
        "manual",
    )
    assert finetune_ids(settings) == [], "no teacher: an evaluation set, not sent to fine-tuning"
    assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "succeeded"


def test_a_manual_job_for_a_segment_uses_its_latest_incidents_evidence(settings: Settings, client: TestClient) -> None:
    async def store(redis: Redis, _: KafkaSend) -> None:
        await incidents(redis).create(traffic_incident(id="inc-seg", segment="gpt-4o-mini/chat/acme"))

    run(settings, store)
    body = {"recipe": "attack-hardening", "segment": "gpt-4o-mini/chat/acme", "count": 30}
    created = client.post("/v1/jobs", json=body)
    assert created.status_code == 202, created.text
    stored = client.get(f"/v1/incidents/{created.json()['incident_id']}").json()
    assert [e["prompt"] for e in stored["evidence"]] == [e.prompt for e in traffic_incident(id="inc-seg").evidence]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({**MANUAL, "recipe": "nope"}, "no recipe nope; known: attack-hardening, debiasing, edge-cases"),
        ({"recipe": "edge-cases", "count": 10}, "give a segment, example prompts, or both"),
        ({"recipe": "edge-cases", "segment": "no/such/segment"}, "no incident of segment no/such/segment"),
        ({**MANUAL, "prompts": ["ok", "  "]}, "must not be blank"),
        ({**MANUAL, "count": 0}, "greater than or equal to 1"),
        ({**MANUAL, "colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_manual_jobs_are_422_problems(settings: Settings, client: TestClient, body: dict, detail: str) -> None:
    refused = client.post("/v1/jobs", json=body)
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert detail in refused.text
    assert client.get("/v1/jobs").json() == []


def test_a_manual_job_needs_the_operate_scope(settings: Settings, read_client: TestClient) -> None:
    refused = read_client.post("/v1/jobs", json=MANUAL)
    assert refused.status_code == 403 and "operate" in refused.json()["detail"]


@pytest.mark.slow
def test_a_worker_process_runs_a_manual_job(settings: Settings, client: TestClient, tmp_path: Path) -> None:
    ensure_topics(settings)
    job = client.post("/v1/jobs", json={**MANUAL, "recipe": "debiasing", "count": 45}).json()
    with worker_process(settings, tmp_path / "worker.log"):
        done = wait_for(
            lambda: (j := client.get(f"/v1/jobs/{job['id']}").json())["state"] in ("succeeded", "failed") and j,
            90,
            "the worker to run the manual job",
        )
    assert done["state"] == "succeeded", done["error"]
    [dataset] = stored_datasets(settings)
    assert dataset.lineage.recipe == "debiasing" and dataset.id == done["dataset_id"]
