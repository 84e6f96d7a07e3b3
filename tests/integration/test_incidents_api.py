"""Incident lifecycle, reports, segments and reference pins through the real API, Redis and broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer
from redis.asyncio import Redis

from devtools.receiver import WebhookReceiver
from driftloop.settings import Settings
from monitor.incidents import DriftIncident
from monitor.records import SegmentStatus, SegmentStatuses, incidents
from monitor.references import ReferencePins, fetch_range
from monitor.reports import store_report
from tests.factories import make_incident, make_shift
from tests.integration.helpers import outbox_size, wait_for

pytestmark = pytest.mark.integration
T = TypeVar("T")
SEGMENT = "gpt-4o-mini/chat/acme"


def on_redis(settings: Settings, act: Callable[[Redis], Awaitable[T]]) -> T:
    async def go() -> T:
        redis = Redis.from_url(settings.redis_url)
        try:
            return await act(redis)
        finally:
            await redis.aclose()

    return asyncio.run(go())


def open_incident(settings: Settings, incident_id: str = "inc-1") -> DriftIncident:
    """An open incident, stored as the worker stores it."""
    incident = make_incident(
        id=incident_id,
        kind="attack-wave",
        severity="critical",
        segment=SEGMENT,
        features=[make_shift()],
    )
    assert on_redis(settings, lambda r: incidents(r).create(incident))
    return incident


def test_an_incident_is_acknowledged_then_resolved_and_repeats_change_nothing(
    settings: Settings, client: TestClient
) -> None:
    open_incident(settings)
    acked = client.post("/v1/incidents/inc-1/acknowledge", json={"note": "looking at the jailbreak source"})
    assert acked.status_code == 200, acked.text
    assert acked.json()["status"] == "acknowledged" and acked.json()["acknowledged_at"]
    again = client.post("/v1/incidents/inc-1/acknowledge")
    assert again.status_code == 200 and again.json() == acked.json()
    assert [i["id"] for i in client.get("/v1/incidents", params={"status": "acknowledged"}).json()] == ["inc-1"]
    assert client.get("/v1/incidents", params={"status": "open"}).json() == []

    resolved = client.post("/v1/incidents/inc-1/resolve", json={"note": "rate limit deployed"})
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert client.post("/v1/incidents/inc-1/resolve").json()["resolved_at"] == resolved.json()["resolved_at"]

    changes = client.get("/v1/incidents/inc-1/changes").json()
    assert [(c["status"], c["by"], c["note"]) for c in changes] == [
        ("acknowledged", "test-admin", "looking at the jailbreak source"),
        ("resolved", "test-admin", "rate limit deployed"),
    ]
    audited = [(e["method"], e["path"], e["status"]) for e in client.get("/v1/audit").json()]
    assert ("POST", "/v1/incidents/inc-1/resolve", 200) in audited


def test_illegal_transitions_and_bad_requests_are_problems(
    settings: Settings, client: TestClient, read_client: TestClient
) -> None:
    open_incident(settings)
    assert client.post("/v1/incidents/inc-1/resolve").status_code == 200
    refused = client.post("/v1/incidents/inc-1/acknowledge")
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == "incident inc-1 is resolved; it cannot become acknowledged"
    assert client.get("/v1/incidents/inc-1").json()["status"] == "resolved"
    assert client.post("/v1/incidents/nope/acknowledge").status_code == 404
    assert client.post("/v1/incidents/inc-1/resolve", json={"note": "x" * 2001}).status_code == 422
    assert client.post("/v1/incidents/inc-1/resolve", json={"reason": "typo"}).status_code == 422
    assert read_client.post("/v1/incidents/inc-1/resolve").status_code == 403


def test_each_transition_is_delivered_once_as_a_signed_webhook(settings: Settings, operate_client: TestClient) -> None:
    open_incident(settings)
    with WebhookReceiver(secret=None) as receiver:
        created = operate_client.post(
            "/v1/webhooks", json={"url": receiver.url, "event_types": ["incident.acknowledged", "incident.resolved"]}
        )
        assert created.status_code == 201, created.text
        receiver.secret = created.json()["secret"]
        operate_client.post("/v1/incidents/inc-1/acknowledge", json={"note": "on it"})
        operate_client.post("/v1/incidents/inc-1/acknowledge")
        operate_client.post("/v1/incidents/inc-1/resolve")
        operate_client.post("/v1/incidents/inc-1/resolve")
        wait_for(lambda: len(receiver.received) == 2 and outbox_size(settings) == 0, 10, "the API's deliveries")
    assert [(r.verified, r.message_id, r.payload["type"]) for r in receiver.received] == [
        (True, "inc-1.acknowledged", "incident.acknowledged"),
        (True, "inc-1.resolved", "incident.resolved"),
    ]
    acknowledged = receiver.received[0].payload["data"]
    assert acknowledged["id"] == "inc-1" and acknowledged["status"] == "acknowledged"
    assert acknowledged["change"]["note"] == "on it" and acknowledged["change"]["by"] == "test-operator"


def test_the_report_is_served_once_stored_and_the_incident_links_it(settings: Settings, client: TestClient) -> None:
    open_incident(settings)
    missing = client.get("/v1/incidents/inc-1/report")
    assert missing.status_code == 404 and "not rendered yet" in missing.json()["detail"]
    assert client.get("/v1/incidents/nope/report").status_code == 404
    html = "<!DOCTYPE html><html><body><h1>prompt_embedding drift</h1></body></html>"
    on_redis(settings, lambda r: store_report(r, "inc-1", html))
    served = client.get("/v1/incidents/inc-1/report")
    assert served.status_code == 200 and served.text == html
    assert served.headers["content-type"].startswith("text/html")
    assert served.headers["content-security-policy"] == "sandbox allow-scripts"
    assert client.get("/v1/incidents/inc-1").json()["report_url"] == "/v1/incidents/inc-1/report"


def test_a_reference_is_pinned_taken_up_by_the_worker_listed_and_released(
    settings: Settings, client: TestClient
) -> None:
    on_redis(settings, lambda r: SegmentStatuses(r).record([SegmentStatus(segment=SEGMENT, state="open", events=1200)]))
    assert client.get("/v1/segments").json() == [
        {
            "segment": SEGMENT,
            "state": "open",
            "events": 1200,
            "open_incident": None,
            "reference": {"mode": "rolling", "pin": None, "applied": True, "events": None},
        }
    ]
    window = {"from": "2025-06-02T08:00:00Z", "to": "2025-06-02T20:00:00Z"}
    pinned = client.put(f"/v1/segments/{SEGMENT}/reference", json=window)
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["mode"] == "pinned" and not pinned.json()["applied"]
    assert pinned.json()["pin"]["from"] == "2025-06-02T08:00:00Z" and pinned.json()["pin"]["pinned_by"] == "test-admin"

    [change] = on_redis(settings, lambda r: ReferencePins(r).pending())
    assert change.segment == SEGMENT and change.pin is not None
    on_redis(settings, lambda r: ReferencePins(r).applied(change.pin, events=640))
    assert on_redis(settings, lambda r: ReferencePins(r).pending()) == []
    [listed] = client.get("/v1/segments").json()
    assert listed["reference"]["applied"] and listed["reference"]["events"] == 640

    assert client.delete(f"/v1/segments/{SEGMENT}/reference").status_code == 204
    assert client.delete(f"/v1/segments/{SEGMENT}/reference").status_code == 404
    [release] = on_redis(settings, lambda r: ReferencePins(r).pending())
    assert release.segment == SEGMENT and release.pin is None
    assert client.get("/v1/segments").json()[0]["reference"] == {
        "mode": "rolling",
        "pin": None,
        "applied": False,
        "events": None,
    }


@pytest.mark.parametrize(
    ("segment", "window"),
    [
        (SEGMENT, {"from": "2025-06-02T20:00:00Z", "to": "2025-06-02T08:00:00Z"}),
        (SEGMENT, {"from": "2025-06-02T08:00:00Z", "to": "2999-01-01T00:00:00Z"}),
        (SEGMENT, {"from": "2025-06-02T08:00:00", "to": "2025-06-02T20:00:00"}),
        ("gpt-4o-mini", {"from": "2025-06-02T08:00:00Z", "to": "2025-06-02T20:00:00Z"}),
    ],
)
def test_a_bad_pin_is_refused(segment: str, window: dict, client: TestClient) -> None:
    refused = client.put(f"/v1/segments/{segment}/reference", json=window)
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/segments").json() == []


def test_the_events_of_a_time_range_are_read_back_from_the_broker(settings: Settings) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    end = start + timedelta(hours=1)
    at = {"before": start - timedelta(minutes=5), "inside": start + timedelta(minutes=30), "after": end}
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    for when, moment in at.items():
        for model in ("gpt-4o-mini", "llama-3.1-8b"):
            for i in range(3):
                event = {"schema": "driftloop.traffic/v1", "id": f"{when}-{model}-{i}", "model": model}
                event |= {"route": "chat", "tenant": "acme", "prompt": f"question {i}"}
                millis = int(moment.timestamp() * 1000) + i
                producer.send(settings.traffic_topic, json.dumps(event).encode(), timestamp_ms=millis)
    producer.send(settings.traffic_topic, b"not json", timestamp_ms=int(at["inside"].timestamp() * 1000))
    producer.flush()
    producer.close()

    events = fetch_range(settings.kafka_bootstrap, settings.traffic_topic, SEGMENT, start, end)
    assert sorted(e.id for e in events) == [f"inside-gpt-4o-mini-{i}" for i in range(3)]
    assert len(fetch_range(settings.kafka_bootstrap, settings.traffic_topic, SEGMENT, start, end, limit=2)) == 2
    with pytest.raises(ValueError, match="start must be before end"):
        fetch_range(settings.kafka_bootstrap, settings.traffic_topic, SEGMENT, end, start)
