"""OTLP ingest against the real broker and Redis: the OpenTelemetry SDK's own OTLP/HTTP exporter, fed by real
instrumentations of an OpenAI client calling llama-cpp-python's server, through ``POST /v1/traces`` to a worker that
counts the events; and the protocol's edges (JSON, gzip, malformed bodies, backpressure, tokens)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest
from fastapi.testclient import TestClient
from google.rpc.status_pb2 import Status
from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInferenceInstrumentor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor as GenAIInstrumentor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client import REGISTRY

from devtools.embedded import SMOLLM2_ALIAS, kafka_broker, serve_in_thread, worker_process
from driftloop.api import api_server, create_api
from driftloop.auth import Scope
from driftloop.kafka import ensure_topics
from driftloop.otlp_codec import decode
from driftloop.settings import Settings
from tests.integration.helpers import accepted, topic_messages, wait_for

pytestmark = pytest.mark.integration
PROTOBUF, JSON = "application/x-protobuf", "application/json"
TRACE_ID, SPAN_ID = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"


def counted(kind: str, outcome: str) -> float:
    """``driftloop_otlp_<kind>_total{outcome}`` in this process (the API's TestClient and server run here)."""
    return REGISTRY.get_sample_value(f"driftloop_otlp_{kind}_total", {"outcome": outcome}) or 0.0


def attribute(key: str, value: object) -> dict:
    kind = {str: "stringValue", int: "intValue", float: "doubleValue", bool: "boolValue"}[type(value)]
    return {"key": key, "value": {kind: str(value) if kind == "intValue" else value}}


def span(span_id: str = SPAN_ID, name: str = "chat gpt-4o", **attributes: object) -> dict:
    return {
        "traceId": TRACE_ID,
        "spanId": span_id,
        "name": name,
        "kind": 3,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000420000000",
        "attributes": [attribute(key, value) for key, value in attributes.items()],
    }


def export(*spans: dict, **resource: str) -> dict:
    """An OTLP JSON ``ExportTraceServiceRequest`` of ``spans`` under one resource."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [attribute(k.replace("_", "."), v) for k, v in resource.items()]},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}],
            }
        ]
    }


OPENLLMETRY = {
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.prompt_tokens": 12,
    "gen_ai.usage.completion_tokens": 5,
    "gen_ai.prompt.0.role": "system",
    "gen_ai.prompt.0.content": "You are terse.",
    "gen_ai.prompt.1.role": "user",
    "gen_ai.prompt.1.content": "What is the capital of France?",
    "gen_ai.completion.0.role": "assistant",
    "gen_ai.completion.0.content": "Paris.",
    "gen_ai.completion.0.finish_reason": "stop",
}


def client(settings: Settings, token: str) -> TestClient:
    return TestClient(create_api(settings), headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def ingest(make_client: Callable[..., TestClient], settings: Settings) -> Iterator[TestClient]:
    """The API with an ``ingest`` token, on topics that exist."""
    ensure_topics(settings)
    with make_client(Scope.ingest) as api:
        yield api


@pytest.fixture
def api_url(settings: Settings) -> Iterator[str]:
    """The API served over HTTP on the test's services (the SDK's exporter needs a real socket)."""
    server = api_server(settings, host="127.0.0.1")
    serve_in_thread(server)
    yield f"http://127.0.0.1:{settings.api_port}"
    server.should_exit = True


@pytest.mark.slow
def test_spans_of_instrumented_openai_calls_reach_the_worker(
    settings: Settings,
    issue_token: Callable[[str, Scope], str],
    api_url: str,
    llm_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two instrumentations (the GenAI conventions' official one with content on spans, and OpenInference) each
    trace one chat completion; the SDK's OTLP/HTTP exporter, configured only by the standard variables, sends them
    with a span that is not GenAI; the worker counts two events that say what the calls did."""
    ensure_topics(settings)
    token = issue_token("exporter", Scope.ingest)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", api_url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{token}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")
    resource = Resource.create({"service.name": "support-bot", "driftloop.tenant": "acme"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    client = openai.OpenAI(base_url=llm_server, api_key="unused", max_retries=0)
    ignored_before = counted("spans", "not_genai")
    replies = {}
    with worker_process(settings, tmp_path / "worker.log"):
        for name, instrumentor in (("genai", GenAIInstrumentor()), ("openinference", OpenInferenceInstrumentor())):
            instrumentor.instrument(tracer_provider=provider)
            try:
                prompt = f"Name one colour ({name})."
                replies[prompt] = client.chat.completions.create(
                    model=SMOLLM2_ALIAS, messages=[{"role": "user", "content": prompt}], max_tokens=8, seed=1
                )
            finally:
                instrumentor.uninstrument()
        with provider.get_tracer("app").start_as_current_span("GET /healthz"):
            pass
        provider.shutdown()
        wait_for(lambda: accepted(settings) >= 2, 90, "the worker to count the two events")

    assert accepted(settings) == 2
    assert counted("spans", "not_genai") == ignored_before + 1
    events = {event["messages"][-1]["content"]: event for event in topic_messages(settings, settings.traffic_topic)}
    assert events.keys() == replies.keys()
    for prompt, reply in replies.items():
        event = events[prompt]
        assert (event["model"], event["route"], event["tenant"]) == (SMOLLM2_ALIAS, "support-bot", "acme")
        assert event["response"] == reply.choices[0].message.content
        assert event["finish_reason"] == reply.choices[0].finish_reason
        assert (event["prompt_tokens"], event["completion_tokens"]) == (
            reply.usage.prompt_tokens,
            reply.usage.completion_tokens,
        )
        assert event["latency_ms"] > 0 and event["metadata"]["service"] == "support-bot"


def test_json_and_gzip_are_read_and_answered_in_kind(ingest: TestClient, settings: Settings) -> None:
    no_prompt = span("00000000000000b2", **{"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"})
    embeddings = span("00000000000000b3", **{"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "e5"})
    plain = span("00000000000000b4", name="SELECT users", **{"db.system": "postgresql"})
    body = export(span(**OPENLLMETRY, **{"driftloop.route": "faq"}), no_prompt, embeddings, plain, tenant_id="t1")
    before = {outcome: counted("spans", outcome) for outcome in ("accepted", "no_prompt", "other_operation")}

    answer = ingest.post(
        "/v1/traces",
        content=gzip.compress(json.dumps(body).encode()),
        headers={"Content-Type": JSON, "Content-Encoding": "gzip"},
    )

    assert answer.status_code == 200 and answer.headers["content-type"] == JSON
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "00000000000000b2: no prompt" in partial["errorMessage"]
    [event] = topic_messages(settings, settings.traffic_topic)
    assert event["id"] == f"{TRACE_ID}-{SPAN_ID}"
    assert (event["model"], event["route"], event["tenant"]) == ("gpt-4o-2024-08-06", "faq", "t1")
    assert event["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    assert (event["response"], event["finish_reason"], event["latency_ms"]) == ("Paris.", "stop", 420.0)
    assert (event["prompt_tokens"], event["completion_tokens"]) == (12, 5)
    assert event["timestamp"].startswith("2023-11-14T22:13:20")
    assert {outcome: counted("spans", outcome) - count for outcome, count in before.items()} == {
        "accepted": 1,
        "no_prompt": 1,
        "other_operation": 1,
    }


@pytest.mark.parametrize(
    ("media", "body"),
    [
        (PROTOBUF, b"\x0a\xff\xff\xff\xff\x0f"),  # a length past the end of the body
        (JSON, json.dumps(export(span(span_id="not-hex", **OPENLLMETRY))).encode()),
        (JSON, b'{"resourceSpans": 7}'),
    ],
    ids=["protobuf", "json-bad-id", "json-wrong-shape"],
)
def test_a_malformed_payload_gets_a_status_400_and_is_counted(ingest: TestClient, media: str, body: bytes) -> None:
    before = counted("requests", "malformed")

    answer = ingest.post("/v1/traces", content=body, headers={"Content-Type": media})

    assert answer.status_code == 400 and answer.headers["content-type"] == media
    status = Status.FromString(answer.content) if media == PROTOBUF else Status(**answer.json())
    assert status.code == 3 and status.message.startswith("not an ExportTraceServiceRequest")
    assert counted("requests", "malformed") == before + 1


def test_unsupported_encodings_get_415_and_a_gzip_bomb_413(ingest: TestClient, settings: Settings) -> None:
    assert ingest.post("/v1/traces", content=b"{}", headers={"Content-Type": "text/plain"}).status_code == 415
    deflated = ingest.post("/v1/traces", content=b"{}", headers={"Content-Type": JSON, "Content-Encoding": "br"})
    assert deflated.status_code == 415 and "br" in deflated.json()["message"]
    bomb = gzip.compress(b" " * (settings.otlp_max_request_bytes + 1))
    refused = ingest.post("/v1/traces", content=bomb, headers={"Content-Type": JSON, "Content-Encoding": "gzip"})
    assert refused.status_code == 413 and len(bomb) < 100_000


def test_only_an_ingest_or_admin_token_may_export_and_ingest_may_do_nothing_else(
    make_client: Callable[..., TestClient], settings: Settings
) -> None:
    ensure_topics(settings)
    body = json.dumps(export(span(**OPENLLMETRY))).encode()
    with TestClient(create_api(settings)) as anonymous:
        assert anonymous.post("/v1/traces", content=body, headers={"Content-Type": JSON}).status_code == 401
    for scope in (Scope.read, Scope.operate):
        with make_client(scope) as api:
            refused = api.post("/v1/traces", content=body, headers={"Content-Type": JSON})
            assert refused.status_code == 403
            assert refused.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="ingest"'
    with make_client(Scope.admin) as admin:
        assert admin.post("/v1/traces", content=body, headers={"Content-Type": JSON}).status_code == 200
    with make_client(Scope.ingest, name="exporter") as exporter:
        assert exporter.post("/v1/traces", content=body, headers={"Content-Type": JSON}).status_code == 200
        assert exporter.get("/v1/incidents").status_code == 403
        with make_client(Scope.admin) as admin:
            audited = admin.get("/v1/audit").json()
    assert [(e["who"], e["path"], e["status"]) for e in audited if e["who"] == "exporter"] == [
        ("exporter", "/v1/incidents", 403)
    ], "ingest calls are not audited; their refusals are"


def test_a_full_buffer_answers_429_with_retry_after(
    issue_token: Callable[[str, Scope], str], settings: Settings
) -> None:
    ensure_topics(settings)
    two = json.dumps(export(span(**OPENLLMETRY), span("00000000000000c2", **OPENLLMETRY))).encode()
    before = counted("requests", "full")
    small = settings.model_copy(update={"otlp_buffer_events": 1})
    with client(small, issue_token("exporter", Scope.ingest)) as api:
        answer = api.post("/v1/traces", content=two, headers={"Content-Type": JSON})
    assert answer.status_code == 429 and answer.headers["retry-after"] == str(settings.otlp_retry_after_s)
    assert answer.json()["code"] == 8
    assert counted("requests", "full") == before + 1


def test_a_broker_that_is_down_answers_503_with_retry_after(
    issue_token: Callable[[str, Scope], str], settings: Settings, tmp_path: Path
) -> None:
    """The first export is buffered; its send fails to reach the stopped broker, and from then exports get 503."""
    with kafka_broker(tmp_path) as bootstrap:
        stopped = settings.model_copy(update={"kafka_bootstrap": bootstrap, "otlp_send_timeout_s": 1.0})
    body = json.dumps(export(span(**OPENLLMETRY))).encode()
    with client(stopped, issue_token("exporter", Scope.ingest)) as api:
        assert api.post("/v1/traces", content=body, headers={"Content-Type": JSON}).status_code == 200
        answer = wait_for(
            lambda: (
                (r := api.post("/v1/traces", content=body, headers={"Content-Type": JSON})).status_code == 503 and r
            ),
            30,
            "a 503",
        )
    assert answer.headers["retry-after"] == str(settings.otlp_retry_after_s)
    assert Status(**answer.json()).code == 14


def test_a_protobuf_export_is_answered_in_protobuf(ingest: TestClient) -> None:
    request = decode(json.dumps(export(span(**OPENLLMETRY))).encode(), JSON, None, 10**6)
    answer = ingest.post("/v1/traces", content=request.SerializeToString(), headers={"Content-Type": PROTOBUF})
    assert answer.status_code == 200 and answer.headers["content-type"] == PROTOBUF
    assert not ExportTraceServiceResponse.FromString(answer.content).HasField("partial_success")


def test_an_event_the_broker_refuses_for_good_is_dropped_and_counted(ingest: TestClient, settings: Settings) -> None:
    """A span within the export limit whose event is over the producer's 1 MiB message limit: the request is
    accepted, the event dropped and counted, and the events after it still reach the topic."""
    huge = span("00000000000000d1", **{**OPENLLMETRY, "gen_ai.prompt.1.content": "word " * 300_000})
    dropped, published = counted("events_published", "dropped"), counted("events_published", "published")

    answer = ingest.post("/v1/traces", json=export(huge, span(**OPENLLMETRY)))

    assert answer.status_code == 200
    wait_for(lambda: counted("events_published", "published") == published + 1, 30, "the small event to be sent")
    assert counted("events_published", "dropped") == dropped + 1
    assert [event["id"] for event in topic_messages(settings, settings.traffic_topic)] == [f"{TRACE_ID}-{SPAN_ID}"]
