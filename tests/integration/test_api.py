"""The control plane on a real Redis and broker."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from devtools.embedded import free_port
from driftloop.api import create_api
from driftloop.settings import Settings

pytestmark = pytest.mark.integration


def test_health_readiness_and_metrics_need_no_token(settings: Settings) -> None:
    with TestClient(create_api(settings)) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        ready = anonymous.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"redis": True, "kafka": True}
        assert "driftloop_webhook_deliveries_total" in anonymous.get("/metrics").text


def test_readiness_fails_when_the_broker_is_gone(settings: Settings) -> None:
    gone = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    with TestClient(create_api(gone)) as anonymous:
        ready = anonymous.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"] == {"redis": True, "kafka": False}


def test_webhooks_are_registered_and_listed_without_secrets(client: TestClient) -> None:
    created = client.post("/v1/webhooks", json={"url": "https://training.example.com/hooks"})
    assert created.status_code == 201 and created.json()["secret"].startswith("whsec_")
    [listed] = client.get("/v1/webhooks").json()
    assert listed["id"] == created.json()["id"] and "secret" not in listed
    assert client.post("/v1/webhooks", json={"url": "not a url"}).status_code == 422


def test_unknown_records_are_404_and_lists_start_empty(client: TestClient) -> None:
    for path in ("/v1/incidents", "/v1/jobs", "/v1/datasets"):
        assert client.get(path).json() == []
    for path in ("/v1/incidents/nope", "/v1/jobs/nope", "/v1/datasets/nope", "/v1/datasets/nope/files/x"):
        assert client.get(path).status_code == 404
    assert client.get("/v1/incidents?limit=0").status_code == 422
