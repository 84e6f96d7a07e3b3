"""The whole loop against a real broker, Redis, worker processes and an HTTP webhook receiver."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaAdminClient, KafkaProducer
from redis.asyncio import Redis

from devtools.embedded import worker_process
from devtools.receiver import WebhookReceiver
from devtools.traffic import MODELS, ShiftPlan, shifted_stream
from driftloop.kafka import ensure_topics, replay
from driftloop.settings import Settings
from feedback import WebhookCreate, register
from generators.quality import QualityThresholds
from tests.factories import make_incident
from tests.integration.helpers import (
    accepted,
    segment_events,
    stored_datasets,
    stored_incidents,
    stored_jobs,
    stream_positions,
    topic_messages,
    wait_for,
)

pytestmark = pytest.mark.integration
EVENTS = 4000
ATTACK = ShiftPlan(shift_at=EVENTS // 2, attack_model=MODELS[0], latency_model=None)


def lines(plan: ShiftPlan | None, seed: int = 11) -> list[str]:
    return [json.dumps(event) for event in shifted_stream(EVENTS, plan, seed=seed)]


def subscribe(settings: Settings, receiver: WebhookReceiver) -> None:
    async def go() -> None:
        redis = Redis.from_url(settings.redis_url)
        hook = await register(redis, WebhookCreate(url=receiver.url, event_types=["dataset.published"]))
        receiver.secret = hook.secret
        await redis.aclose()

    asyncio.run(go())


def finished_jobs(settings: Settings, count: int) -> list:
    found = [job for job in stored_jobs(settings) if job.state in ("succeeded", "failed")]
    return found if len(found) >= count else []


def test_shifted_stream_runs_the_loop_once_per_incident(
    settings: Settings, tmp_path: Path, make_client: Callable[..., TestClient]
) -> None:
    ensure_topics(settings)
    settings = settings.model_copy(update={"gate_embedding_model": "tuned"})  # not the default: the worker reads it
    with WebhookReceiver(secret=None) as receiver, worker_process(settings, tmp_path / "worker.log"):
        subscribe(settings, receiver)
        replay(lines(ATTACK), settings)
        wait_for(lambda: accepted(settings) >= EVENTS, 120, "all events to be processed")
        [job] = wait_for(lambda: finished_jobs(settings, 1), 60, "the generation job")

        [incident] = stored_incidents(settings)
        assert incident.kind == "attack-wave" and incident.segment.startswith(MODELS[0])
        assert "injection_score" in {shift.feature for shift in incident.features}
        assert job.state == "succeeded" and job.incident_id == incident.id
        [dataset] = stored_datasets(settings)
        assert dataset.id == job.dataset_id and dataset.lineage.incident_id == incident.id
        assert dataset.kind == "evaluation", "no LLM endpoint: prompts and expected behaviour, no targets"
        assert dataset.quality.encoder == "tuned" and dataset.quality.thresholds == QualityThresholds.on("tuned")
        rows = (Path(dataset.path) / "eval.jsonl").read_bytes()
        assert rows.count(b"\n") == dataset.rows
        with make_client("read") as api:
            assert api.get(f"/v1/datasets/{dataset.id}/files/eval.jsonl").content == rows
            assert api.get(f"/v1/incidents/{incident.id}").json()["kind"] == "attack-wave"
            segments = {s["segment"]: s for s in api.get("/v1/segments").json()}
            assert segments[incident.segment]["state"] == "open" and segments[incident.segment]["events"] > 1000
            assert {s["state"] for name, s in segments.items() if name != incident.segment} == {"quiet"}
            # the Evidently report is rendered off the event loop, after the incident opened
            url = wait_for(lambda: api.get(f"/v1/incidents/{incident.id}").json()["report_url"], 180, "the report")
            report = api.get(url)
            assert report.status_code == 200 and "injection_score" in report.text and "prompt" in report.text
        wait_for(lambda: receiver.received, 10, "the webhook delivery")
        assert [(r.message_id, r.verified) for r in receiver.received] == [(dataset.id, True)]
        assert receiver.received[0].payload["data"]["incident_id"] == incident.id

        # The same incident delivered again, then a new one: once the new one is done, the duplicate was seen.
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        sentinel = make_incident(id="sentinel", kind="input-shift", segment="m/r/t", evidence=incident.evidence)
        for message in (incident, sentinel):
            producer.send(settings.incidents_topic, key=message.id.encode(), value=message.model_dump_json().encode())
        producer.flush()
        wait_for(lambda: finished_jobs(settings, 2), 60, "the sentinel's job")
        assert sorted(j.incident_id for j in stored_jobs(settings)) == sorted([incident.id, "sentinel"])
        wait_for(lambda: len(receiver.received) == 2, 10, "the sentinel's webhook delivery")
        assert sorted(r.payload["data"]["incident_id"] for r in receiver.received) == sorted([incident.id, "sentinel"])
        assert topic_messages(settings, settings.finetune_topic) == [], "evaluation sets are not sent to fine-tuning"


def test_quiet_stream_of_the_same_length_opens_nothing(settings: Settings, tmp_path: Path) -> None:
    ensure_topics(settings)
    with worker_process(settings, tmp_path / "worker.log"):
        replay(lines(None), settings)
        wait_for(lambda: accepted(settings) >= EVENTS, 120, "all events to be processed")
    assert stored_incidents(settings) == []
    assert stored_jobs(settings) == []


def test_malformed_events_go_to_the_dlq_and_the_worker_goes_on(settings: Settings, tmp_path: Path) -> None:
    good = lines(None)[:40]
    bad = ["{not json", '{"schema": "driftloop.traffic/v1", "id": "x", "model": "m"}', '"a string"']
    ensure_topics(settings)
    with worker_process(settings, tmp_path / "worker.log") as worker:
        replay([*good[:20], *bad, *good[20:]], settings)
        wait_for(lambda: accepted(settings) >= len(good), 60, "the good events after the bad ones")
        letters = wait_for(lambda: topic_messages(settings, settings.dlq_topic), 10, "dead letters")
        assert worker.poll() is None
        metrics = httpx.get(f"http://127.0.0.1:{settings.worker_metrics_port}/metrics").text
    assert sorted(letter["reason"] for letter in letters) == ["invalid_field", "not_an_object", "not_json"]
    assert {letter["event"] for letter in letters} == set(bad)
    assert all(letter["detail"] for letter in letters)
    assert 'driftloop_events_rejected_total{reason="not_json"} 1.0' in metrics
    assert f'driftloop_events_total{{outcome="accepted"}} {len(good)}.0' in metrics


def test_killed_worker_loses_no_incident_and_duplicates_no_job(settings: Settings, tmp_path: Path) -> None:
    ensure_topics(settings)
    log = tmp_path / "worker.log"
    with WebhookReceiver(secret=None) as receiver:
        subscribe(settings, receiver)
        with worker_process(settings, log) as first:
            replay(lines(ATTACK, seed=12), settings)
            wait_for(lambda: accepted(settings) >= 1200, 120, "the first worker to be mid-stream")
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
        with worker_process(settings, log) as second:
            wait_for(lambda: stored_incidents(settings), 120, "the incident after the restart")
            os.kill(second.pid, signal.SIGKILL)
            second.wait()
        with worker_process(settings, log):
            wait_for(
                lambda: accepted(settings) >= EVENTS,
                120,
                f"the rest of the stream ({EVENTS} events)",
                explain=lambda: f"{accepted(settings)} accepted; offsets read/end {stream_positions(settings)}",
            )
            wait_for(lambda: finished_jobs(settings, 1), 60, "the generation job")
            wait_for(lambda: receiver.received, 30, "the webhook delivery")

    [incident] = stored_incidents(settings)
    assert incident.kind == "attack-wave"
    # The segment's event count went on across restarts: detector state came back from the table.
    assert incident.detected_after_events > EVENTS // len(MODELS) // 2
    [job] = stored_jobs(settings)
    assert job.state == "succeeded" and job.incident_id == incident.id
    [dataset] = stored_datasets(settings)
    assert topic_messages(settings, settings.finetune_topic) == [], "an evaluation set is not sent to fine-tuning"
    assert {r.message_id for r in receiver.received} == {dataset.id}


def rewind(settings: Settings) -> None:
    """Forget the worker's committed offsets (its consumer group), as if its commits were lost: a worker started
    next reads the traffic topic from the start."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.delete_groups([settings.app_id])
    finally:
        admin.close()


def test_events_redelivered_after_a_restart_are_not_counted_twice(settings: Settings, tmp_path: Path) -> None:
    """Every event the restored state already holds is redelivered (the group rewound to the start): the segments
    count each event once, and only the events after the last checkpoint are folded in again."""
    ensure_topics(settings)
    traffic = lines(None, seed=13)
    log = tmp_path / "worker.log"
    replay(traffic[:1500], settings)
    with worker_process(settings, log) as worker:
        wait_for(lambda: segment_events(settings) >= 1500, 120, "the first worker to fold in every event")
        worker.send_signal(signal.SIGTERM)  # a clean stop: offsets committed, checkpoints flushed
        worker.wait(timeout=60)
    rewind(settings)
    with worker_process(settings, log):
        replay(traffic[1500:1700], settings)
        wait_for(lambda: segment_events(settings) >= 1700, 120, "the second worker to fold in the new events")
        wait_for(lambda: accepted(settings) >= 1700, 30, "the accepted counter")
    assert segment_events(settings) == 1700


def test_an_attack_during_a_latency_regression_is_one_incident_naming_both_with_a_job_for_the_attack_only(
    settings: Settings, tmp_path: Path, make_client: Callable[..., TestClient]
) -> None:
    both = ShiftPlan(shift_at=EVENTS // 2, attack_model=MODELS[0], latency_model=MODELS[0], latency_factor=1.4)
    ensure_topics(settings)
    with worker_process(settings, tmp_path / "worker.log"):
        replay(lines(both, seed=13), settings)
        wait_for(lambda: accepted(settings) >= EVENTS, 120, "all events to be processed")
        [job] = wait_for(lambda: finished_jobs(settings, 1), 60, "the attack's generation job")
        named = wait_for(
            lambda: [i for i in stored_incidents(settings) if len(i.causes) >= 2], 30, "both causes to be named"
        )
    [incident] = stored_incidents(settings)
    assert named[0].id == incident.id and incident.segment.startswith(MODELS[0])
    kinds = [cause.kind for cause in incident.causes]
    assert kinds[0] == "attack-wave" and "latency-drift" in kinds, kinds
    assert incident.kind == "attack-wave" and incident.severity == "critical"
    latency = next(cause for cause in incident.causes if cause.kind == "latency-drift")
    assert {"latency_ms", "tokens_per_s"} & set(latency.features) and latency.onset_event is not None
    assert [(j.recipe, j.incident_id) for j in stored_jobs(settings)] == [("attack-hardening", incident.id)], (
        "the attack cause gets its job; the latency cause none (on-call only)"
    )
    assert job.state == "succeeded"
    with make_client("read") as api:
        shown = api.get(f"/v1/incidents/{incident.id}").json()
    assert [c["kind"] for c in shown["causes"]] == kinds
