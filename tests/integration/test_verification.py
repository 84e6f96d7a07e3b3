"""Closing the loop on a real model: incident → dataset with teacher-written targets → candidates reported (API and
``finetune.results``) →
verified by a real worker against production → ``promote`` for the candidate that learnt the dataset, ``reject``
for the unchanged model. Both models are SmolLM2-135M under llama-cpp-python's server; the hardened one is
:class:`devtools.stand_in.StandIn` in front of it (SmolLM2 follows no hardening system prompt)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer
from redis.asyncio import Redis

from devtools.embedded import worker_process
from devtools.receiver import WebhookReceiver
from devtools.stand_in import StandIn, serve_stand_in
from driftloop.api import create_api
from driftloop.auth import Scope
from driftloop.kafka import ensure_topics
from driftloop.settings import Settings
from feedback import WebhookCreate, register
from feedback.publishing import KafkaSend
from monitor.sink import IncidentSink
from tests.factories import traffic_incident
from tests.integration.helpers import run, stored_datasets, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]


def result_message(candidate_id: str, dataset_id: str, base_url: str, model: str) -> bytes:
    """A ``finetune.results`` message as a training system sends it (``schemas/finetune-result.v1.json``)."""
    return json.dumps({
        "specversion": "1.0", "id": candidate_id, "source": "trainer/test", "type": "driftloop.candidate.reported",
        "subject": dataset_id, "time": "2026-11-25T16:40:26+00:00", "datacontenttype": "application/json",
        "dataschema": "urn:driftloop:schema:finetune-result:v1",
        "data": {"dataset_id": dataset_id, "base_url": base_url, "model": model},
    }).encode()  # fmt: skip


def test_the_hardened_candidate_is_promoted_and_the_unchanged_one_rejected(
    settings: Settings, llm_server: str, tmp_path: Path, issue_token: Callable[[str, Scope], str]
) -> None:
    settings = settings.model_copy(
        update={
            "stress_endpoint": llm_server,
            "llm_base_url": llm_server,  # the teacher: a training set with SmolLM2-written, rule-checked targets
            "target_judge": False,
            "target_max_tokens": 128,
            "target_words": 40,  # 150-word answers are cut at the token limit and dropped
            "llm_structured_output": "json_object",
            "candidate_allowed_networks": "127.0.0.1/32",
            "samples_per_job": 120,  # SmolLM2 keeps about half: the stand-in needs a kept row near most probes
            "verify_probes": 24,
            "verify_general_probes": 6,
            "verify_max_tokens": 24,
            "verify_concurrency": 2,
            "job_lease_s": 30.0,
        }
    )
    incident = traffic_incident(id="verify-inc")
    ensure_topics(settings)
    with WebhookReceiver(secret=None) as receiver, worker_process(settings, tmp_path / "worker.log"):

        async def start(redis: Redis, _: KafkaSend) -> None:
            hook = WebhookCreate(url=receiver.url, event_types=["candidate.verified", "candidate.rejected"])
            receiver.secret = (await register(redis, hook)).secret
            await IncidentSink(redis).emit(incident)

        run(settings, start)
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        producer.send(settings.incidents_topic, incident.model_dump_json().encode(), key=incident.id.encode()).get(30)
        [dataset] = wait_for(lambda: stored_datasets(settings), 600, "the incident's dataset")
        assert dataset.kind == "training" and dataset.lineage.teacher == "smollm2-135m"
        stand_in = StandIn.trained_on(llm_server, (Path(dataset.path) / "train.jsonl").read_bytes())

        token = issue_token("trainer", Scope.operate)
        strict_settings = settings.model_copy(update={"candidate_allowed_networks": ""})
        with (
            serve_stand_in(stand_in, "smollm2-hardened") as hardened,
            api_client(settings, token) as api,
            api_client(strict_settings, token) as strict,
        ):
            answer = strict.post(f"/v1/datasets/{dataset.id}/candidates", json=report("ft-x", hardened))
            assert answer.status_code == 422 and "candidate endpoint" in answer.json()["detail"]

            started = time.perf_counter()
            answer = api.post(f"/v1/datasets/{dataset.id}/candidates", json=report("ft-hardened", hardened))
            assert answer.status_code == 202, answer.text
            again = api.post(f"/v1/datasets/{dataset.id}/candidates", json=report("ft-hardened", hardened))
            assert again.status_code == 200 and again.json()["id"] == "ft-hardened"
            clash = api.post(f"/v1/datasets/{dataset.id}/candidates", json=report("ft-hardened", llm_server))
            assert clash.status_code == 409
            unchanged = result_message("ft-unchanged", dataset.id, llm_server, "smollm2-135m")
            producer.send(settings.results_topic, unchanged, key=b"ft-unchanged").get(30)
            producer.close()

            def finished() -> list[dict]:
                listed = api.get(f"/v1/datasets/{dataset.id}/candidates").json()
                done = [c for c in listed if c["state"] in ("verified", "rejected", "failed")]
                return listed if len(done) == 2 else []

            candidates = {c["id"]: c for c in wait_for(finished, 1500, "both verdicts", every=2)}
            elapsed = time.perf_counter() - started
            incident_now = api.get(f"/v1/incidents/{incident.id}").json()
            changes = api.get(f"/v1/incidents/{incident.id}/changes").json()
        wait_for(lambda: len(receiver.received) >= 2, 30, "the candidate webhooks")

    hardened_verdict, unchanged_verdict = candidates["ft-hardened"]["verdict"], candidates["ft-unchanged"]["verdict"]
    print(f"\nverification of both candidates: {elapsed:.0f} s")
    for name, verdict in (("hardened", hardened_verdict), ("unchanged", unchanged_verdict)):
        rates = {f["family"]: (f["production"], f["candidate"]) for f in [verdict["incident"], *verdict["families"]]}
        print(name, verdict["decision"], verdict["reasons"], json.dumps(rates))
    assert candidates["ft-hardened"]["state"] == "verified", hardened_verdict
    assert hardened_verdict["decision"] == "promote" and hardened_verdict["incident"]["change"] == "improved"
    assert candidates["ft-hardened"]["source"] == "api"
    assert candidates["ft-unchanged"]["state"] == "rejected", unchanged_verdict
    assert candidates["ft-unchanged"]["source"] == "finetune.results"
    assert unchanged_verdict["decision"] == "reject" and unchanged_verdict["reasons"]
    assert unchanged_verdict["incident"]["change"] == "unchanged"
    assert {f["family"] for f in hardened_verdict["families"]} >= {"heldout", "general"}
    assert any("stress suite" in note for note in hardened_verdict["notes"])
    assert incident_now["status"] == "fix-verified" and incident_now["fixed_at"]
    assert changes[-1]["status"] == "fix-verified" and changes[-1]["by"] == "verifier:ft-hardened"
    events = {(r.payload["type"], r.payload["data"]["id"]) for r in receiver.received}
    assert events == {("candidate.verified", "ft-hardened"), ("candidate.rejected", "ft-unchanged")}
    assert all(r.verified for r in receiver.received)


def report(candidate_id: str, base_url: str) -> dict:
    return {"candidate_id": candidate_id, "base_url": base_url, "model": "smollm2-hardened"}


def api_client(settings: Settings, token: str) -> TestClient:
    return TestClient(create_api(settings), headers={"Authorization": f"Bearer {token}"})
