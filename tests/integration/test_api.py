"""The control plane on a real Redis and broker."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from core.api import MAX_OFFSET
from devtools.embedded import free_port
from driftloop.api import create_api
from driftloop.auth import Scope
from driftloop.otlp_api import PATH as OTLP_PATH
from driftloop.settings import Settings
from feedback.retention import MAX_AGE_DAYS

DOCS = ("/docs", "/redoc", "/openapi.json")
LLM_KEY = "vllm-key-for-the-test"

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


def test_api_docs_are_served_only_with_the_docs_setting(
    settings: Settings, issue_token: Callable[[str, Scope], str]
) -> None:
    """A production API gives strangers no map of itself: no /docs, /redoc, /openapi.json without DRIFTLOOP_API_DOCS."""
    admin = {"Authorization": f"Bearer {issue_token('docs-reader', Scope.admin)}"}
    with TestClient(create_api(settings.model_copy(update={"api_docs": False}))) as api:
        for path in DOCS:
            assert api.get(path).status_code == 401, path  # not open: a stranger learns nothing
            assert api.get(path, headers=admin).status_code == 404, path  # and not there at all
    with TestClient(create_api(settings.model_copy(update={"api_docs": True}))) as api:
        for path in DOCS:
            assert api.get(path).status_code == 200, path
        assert api.get("/openapi.json").json()["info"]["title"] == "driftloop"
    assert Settings(_env_file=None).api_docs is False, "off unless turned on"


class _KeyedModels(BaseHTTPRequestHandler):
    """GET /v1/models that answers only with the right bearer key, as vLLM started with ``--api-key`` does."""

    def do_GET(self) -> None:
        authorized = self.headers.get("Authorization") == f"Bearer {LLM_KEY}"
        self.send_response(200 if authorized else 401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"object": "list", "data": []}' if authorized else b'{"error": "Unauthorized"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def keyed_llm() -> Iterator[str]:
    """Base URL of an OpenAI-compatible /v1/models that wants ``LLM_KEY``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeyedModels)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_llm_backend_probe_sends_the_llm_api_key(settings: Settings, keyed_llm: str) -> None:
    """vLLM runs with an API key in the stack; the API's backend probe carries DRIFTLOOP_LLM_API_KEY."""
    for key, up in ((None, "0.0"), (SecretStr(LLM_KEY), "1.0")):
        with TestClient(create_api(settings.model_copy(update={"llm_base_url": keyed_llm, "llm_api_key": key}))) as api:
            assert f"driftloop_llm_backend_up {up}" in api.get("/metrics").text


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
                if depth > 1_000:  # past json's recursion limit: refused (OTLP's own errors are a google.rpc.Status)
                    media = {PROBLEM, "application/json"} if path == OTLP_PATH else {PROBLEM}
                    assert response.status_code >= 400 and response.headers["content-type"] in media, path


def test_a_retention_age_past_timedelta_range_is_a_422(client: TestClient) -> None:
    """``max_age_days`` past what a ``timedelta`` holds (999,999,999 days) overflowed once a version existed (a 500);
    the policy bounds it at ``MAX_AGE_DAYS``."""
    for days in (1e300, 1e10, MAX_AGE_DAYS + 1):
        refused = client.post("/v1/datasets/retention", params={"dry_run": "true"}, json={"max_age_days": days})
        assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM, (days, refused.text)
    kept = client.post("/v1/datasets/retention", params={"dry_run": "true"}, json={"max_age_days": MAX_AGE_DAYS})
    assert kept.status_code == 200
