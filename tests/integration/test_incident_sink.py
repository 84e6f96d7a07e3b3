"""The incident sink against the harness's Redis: each incident stored once, published on every emit, counted
and logged once."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis

from driftloop.settings import Settings
from monitor.incidents import DriftIncident, Evidence
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
