"""The control plane on a real Redis and broker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from devtools.embedded import free_port
from driftloop.api import create_api
from driftloop.auth import Scope
from driftloop.settings import Settings

DOCS = ("/docs", "/redoc", "/openapi.json")
LLM_KEY = "vllm-key-for-the-test"

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
