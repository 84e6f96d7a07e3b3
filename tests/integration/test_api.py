"""The control plane on a real Redis and broker."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from core.api import MAX_OFFSET
from devtools.embedded import free_port
from driftloop.api import create_api
from driftloop.auth import Scope
from driftloop.settings import Settings
from feedback.retention import MAX_AGE_DAYS

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


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


def _operations(client: TestClient, method: str) -> list[tuple[str, dict]]:
    """Every ``method`` operation of the API's own document: its path with path parameters filled in, and itself."""
    document = client.get("/openapi.json").json()
    return [
        (re.sub(r"{[^}:]+(:path)?}", "x", path), item[method])
        for path, item in document["paths"].items()
        if method in item
    ]


def test_an_offset_past_redis_range_is_a_422_on_every_list(client: TestClient) -> None:
    """``?offset=2**63-1`` overflowed Redis's 64-bit range (a 500); every list bounds it at ``MAX_OFFSET``."""
    gets = _operations(client, "get")
    lists = [path for path, op in gets if "offset" in {param["name"] for param in op.get("parameters", [])}]
    assert len(lists) >= 7
    for path in lists:
        for offset in (2**63 - 1, 2**63, 10**30, MAX_OFFSET + 1):
            refused = client.get(path, params={"offset": offset})
            assert refused.status_code == 422, (path, offset, refused.text)
            assert refused.headers["content-type"] == PROBLEM
        assert client.get(path, params={"offset": MAX_OFFSET}).status_code == 200, path


@pytest.mark.parametrize("depth", [300, 5_000])
@pytest.mark.parametrize("key", [{"Idempotency-Key": "deep-1"}, {}], ids=["idempotent", "plain"])
def test_deeply_nested_json_is_a_client_error_on_every_post(
    settings: Settings, issue_token: Callable[[str, Scope], str], depth: int, key: dict[str, str]
) -> None:
    """Nesting past the parser's recursion limit raised RecursionError in the idempotency fingerprint (a 500);
    nesting below it is no server error either."""
    body = "[" * depth + "]" * depth
    admin = {"Authorization": f"Bearer {issue_token('nester', Scope.admin)}", "content-type": "application/json"}
    with TestClient(create_api(settings), headers=admin, raise_server_exceptions=False) as api:
        for path, _ in _operations(api, "post"):
            for wrapped in (body, '{"url": "https://a.example.com/", "recipe": "x", "nested": ' + body + "}"):
                response = api.post(path, content=wrapped, headers=key)
                assert response.status_code < 500, (path, depth, response.status_code, response.text[:200])
                if depth > 1_000:  # past json's recursion limit: refused
                    assert response.status_code >= 400 and response.headers["content-type"] == PROBLEM, path


def test_a_retention_age_past_timedelta_range_is_a_422(client: TestClient) -> None:
    """``max_age_days`` past what a ``timedelta`` holds (999,999,999 days) overflowed once a version existed (a 500);
    the policy bounds it at ``MAX_AGE_DAYS``."""
    for days in (1e300, 1e10, MAX_AGE_DAYS + 1):
        refused = client.post("/v1/datasets/retention", params={"dry_run": "true"}, json={"max_age_days": days})
        assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM, (days, refused.text)
    kept = client.post("/v1/datasets/retention", params={"dry_run": "true"}, json={"max_age_days": MAX_AGE_DAYS})
    assert kept.status_code == 200
