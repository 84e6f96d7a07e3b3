"""The incident sink against the harness's Redis: each incident stored once, published on every emit, counted
and logged once."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis

from driftloop.settings import Settings
from monitor.incidents import Cause, CauseAdded, DriftIncident, Evidence, IncidentKind, IncidentStatus
from monitor.lifecycle import change_status
from monitor.records import incidents
from monitor.sink import IncidentSink

pytestmark = pytest.mark.integration


def incident(incident_id: str = "inc-sink", prompt: str = "How do I sort a list?") -> DriftIncident:
    return DriftIncident(
        id=incident_id,
        kind="input-shift",
        segment="m/chat/t",
        features=[],
        detected_after_events=10,
        onset_event=1,
        evidence=[Evidence(prompt=prompt)],
    )


def test_a_second_emit_stores_nothing_new_counts_nothing_and_publishes_again(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    published: list[DriftIncident] = []
    registry = CollectorRegistry()
    opened = Counter("incidents_opened", "Incidents opened", ["kind", "severity"], registry=registry)

    async def publish(sent: DriftIncident) -> None:
        published.append(sent)

    async def scenario() -> tuple[list[bool], list[DriftIncident]]:
        redis = Redis.from_url(settings.redis_url)
        try:
            sink = IncidentSink(redis, publish, opened)
            first = incident()
            again = first.model_copy(update={"evidence": [Evidence(prompt="another prompt")]})
            return [await sink.emit(first), await sink.emit(again)], await incidents(redis).list()
        finally:
            await redis.aclose()

    with caplog.at_level(logging.WARNING, logger="monitor.sink"):
        news, stored = asyncio.run(scenario())
    assert news == [True, False]
    assert [i.evidence[0].prompt for i in stored] == ["How do I sort a list?"], "the first record stands"
    assert [i.id for i in published] == ["inc-sink", "inc-sink"], "a retried emit completes the publication"
    assert registry.get_sample_value("incidents_opened_total", {"kind": "input-shift", "severity": "info"}) == 1.0
    assert [r.getMessage() for r in caplog.records] == [f"incident inc-sink: {stored[0].headline}"]


def test_a_sink_without_a_publisher_only_stores(settings: Settings) -> None:
    quiet = incident("inc-quiet")

    async def scenario() -> tuple[bool, DriftIncident | None]:
        redis = Redis.from_url(settings.redis_url)
        try:
            return await IncidentSink(redis).emit(quiet), await incidents(redis).get(quiet.id)
        finally:
            await redis.aclose()

    new, stored = asyncio.run(scenario())
    assert new and stored == quiet


def test_a_cause_added_is_stored_published_and_counted_once_and_never_on_a_resolved_incident(
    settings: Settings,
) -> None:
    published: list[DriftIncident] = []
    registry = CollectorRegistry()
    causes = Counter("causes", "Causes named", ["kind", "severity"], registry=registry)
    latency = Cause(kind="latency-drift", severity="warning", features=["latency_ms"], detectors=["cusum"])
    attack = Cause(kind="attack-wave", severity="critical", features=["injection_score"], detectors=["cusum"])

    async def publish(sent: DriftIncident) -> None:
        published.append(sent)

    async def scenario() -> tuple[list[DriftIncident | None], DriftIncident | None]:
        redis = Redis.from_url(settings.redis_url)
        try:
            sink = IncidentSink(redis, publish, causes=causes)
            await sink.emit(
                incident("inc-causes").model_copy(update={"kind": IncidentKind.LATENCY_DRIFT, "causes": [latency]})
            )
            added = CauseAdded(incident_id="inc-causes", segment="m/chat/t", cause=attack)
            outcomes = [await sink.add_cause(added), await sink.add_cause(added)]
            await change_status(redis, "inc-causes", IncidentStatus.RESOLVED, by="oncall")
            later = CauseAdded(
                incident_id="inc-causes",
                segment="m/chat/t",
                cause=latency.model_copy(update={"kind": IncidentKind.LANGUAGE_SHIFT}),
            )
            outcomes.append(await sink.add_cause(later))
            outcomes.append(await sink.add_cause(added.model_copy(update={"incident_id": "nobody"})))
            return outcomes, await incidents(redis).get("inc-causes")
        finally:
            await redis.aclose()

    (first, again, on_resolved, unknown), stored = asyncio.run(scenario())
    assert first is not None and [c.kind for c in first.causes] == ["attack-wave", "latency-drift"]
    assert first.kind == "attack-wave" and first.severity == "critical", "kind and severity: the worst cause's"
    assert again == first and on_resolved is None and unknown is None
    assert stored is not None and [c.kind for c in stored.causes] == ["attack-wave", "latency-drift"]
    assert [len(i.causes) for i in published] == [1, 2, 2], "published again each time: consumers start new jobs"
    assert registry.get_sample_value("causes_total", {"kind": "attack-wave", "severity": "critical"}) == 1.0
    assert registry.get_sample_value("causes_total", {"kind": "latency-drift", "severity": "warning"}) == 1.0
