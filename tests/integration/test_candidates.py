"""Candidate reports over HTTP and their verification job, without a model: idempotency, conflicts, the egress
policy, and a candidate that cannot be verified failing with its reason on the record, the incident untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from driftloop.settings import Settings
from driftloop.worker import candidate_verifier
from feedback.candidates import CandidateState, candidates
from feedback.metrics import FeedbackMetrics
from feedback.publishing import KafkaSend
from feedback.registry import DatasetRegistry
from feedback.webhooks import Dispatcher
from monitor.incidents import IncidentStatus
from monitor.records import incidents
from monitor.sink import IncidentSink
from tests.factories import make_incident, make_version
from tests.integration.helpers import run

pytestmark = pytest.mark.integration

REPORT = {"candidate_id": "ft-7", "base_url": "https://models.example.com/v1", "model": "llama-ft"}


def stored_version(settings: Settings, tmp_path: Path) -> str:
    manifest = make_version(tmp_path)

    async def store(redis: Redis, _: KafkaSend) -> None:
        await DatasetRegistry(redis).register(manifest)
        await IncidentSink(redis).emit(make_incident())

    run(settings, store)
    return manifest.id


def test_a_report_is_stored_once_and_a_clash_is_a_conflict(
    settings: Settings, tmp_path: Path, client: TestClient, read_client: TestClient
) -> None:
    dataset_id = stored_version(settings, tmp_path)
    first = client.post(f"/v1/datasets/{dataset_id}/candidates", json=REPORT)
    assert first.status_code == 202, first.text
    assert first.json() | {"created_at": None, "updated_at": None} == first.json() | {
        "id": "ft-7", "dataset_id": dataset_id, "incident_id": "inc-1", "segment": "gpt-4o-mini/chat/acme",
        "source": "api", "state": "reported", "verdict": None, "created_at": None, "updated_at": None,
    }  # fmt: skip
    again = client.post(f"/v1/datasets/{dataset_id}/candidates", json=REPORT)
    assert again.status_code == 200 and again.json() == first.json()
    clash = client.post(f"/v1/datasets/{dataset_id}/candidates", json=REPORT | {"model": "other"})
    assert clash.status_code == 409 and "ft-7" in clash.json()["detail"]
    assert read_client.get("/v1/candidates/ft-7").json()["model"] == "llama-ft"
    assert [c["id"] for c in read_client.get(f"/v1/datasets/{dataset_id}/candidates").json()] == ["ft-7"]
    assert [c["id"] for c in read_client.get("/v1/candidates", params={"incident_id": "inc-1"}).json()] == ["ft-7"]
    assert read_client.get("/v1/candidates", params={"incident_id": "other"}).json() == []
    assert read_client.post(f"/v1/datasets/{dataset_id}/candidates", json=REPORT).status_code == 403


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (REPORT | {"base_url": "http://127.0.0.1:8000/v1"}, 422),
        (REPORT | {"base_url": "http://169.254.169.254/latest"}, 422),
        (REPORT | {"base_url": "http://localhost/v1"}, 422),
        (REPORT | {"base_url": "file:///etc/passwd"}, 422),
        (REPORT | {"candidate_id": "../x"}, 422),
        (REPORT | {"api_key": "sk-1"}, 422),
        ({"candidate_id": "ft-8"}, 422),
    ],
)
def test_bad_or_private_reports_are_refused(
    settings: Settings, tmp_path: Path, client: TestClient, body: dict, status: int
) -> None:
    dataset_id = stored_version(settings, tmp_path)
    answer = client.post(f"/v1/datasets/{dataset_id}/candidates", json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert client.get("/v1/candidates").json() == []


def test_an_unknown_dataset_is_404(client: TestClient) -> None:
    assert client.post("/v1/datasets/ds-0000000000000000/candidates", json=REPORT).status_code == 404


def test_without_a_production_endpoint_the_candidate_fails_and_the_incident_stays(
    settings: Settings, tmp_path: Path, client: TestClient
) -> None:
    dataset_id = stored_version(settings, tmp_path)
    assert client.post(f"/v1/datasets/{dataset_id}/candidates", json=REPORT).status_code == 202
    metrics = FeedbackMetrics(CollectorRegistry())

    async def verify(redis: Redis, _: KafkaSend) -> tuple:
        verifier = candidate_verifier(settings, redis, Dispatcher(redis))
        verifier.metrics = metrics
        swept = await verifier.sweep()
        return swept, await verifier.sweep(), await candidates(redis).get("ft-7"), await incidents(redis).get("inc-1")

    swept, again, candidate, incident = run(settings, verify)
    assert [c.id for c in swept] == ["ft-7"] and again == [], "a finished candidate leaves the sweep"
    assert candidate.state == CandidateState.FAILED and "no production endpoint" in candidate.error
    assert incident.status == IncidentStatus.OPEN
    assert metrics.registry.get_sample_value("driftloop_candidate_verdicts_total", {"outcome": "failed"}) == 1
