"""Bounded memory for segments: the cap on live segments (evicted to their checkpoint, restored on their next
event), the O(1) "the service is established" time (novelty is by event time), and the fold of routes and tenants
past their limit."""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from driftloop.settings import Settings
from monitor.agent import Record, TrafficAgent
from monitor.cardinality import OVERFLOW
from monitor.events import TrafficEvent
from monitor.incidents import DriftIncident, IncidentKind, Resolution
from monitor.metrics import MonitorMetrics
from monitor.records import SegmentStatuses
from monitor.sink import IncidentSink
from monitor.stream import StreamStep
from tests.factories import stream_settings

SEGMENT = "m/default/default"


def step_of(monitor_store: dict | None = None, topic_store: dict | None = None, **changes: object) -> StreamStep:
    return StreamStep(
        stream_settings(**changes),
        {} if monitor_store is None else monitor_store,
        {} if topic_store is None else topic_store,
        MonitorMetrics(CollectorRegistry()),
    )


def sample(step: StreamStep, name: str, labels: dict[str, str] | None = None) -> float | None:
    return step.metrics.registry.get_sample_value(name, labels or {})


def event(i: int, tenant: str = "default", route: str = "default", model: str = "m") -> TrafficEvent:
    return TrafficEvent(id=f"{model}-{route}-{tenant}-{i}", model=model, route=route, tenant=tenant, prompt=f"p {i}")


def refusals(n: int, rate: float, seed: int) -> list[dict[str, float]]:
    return [{"refusal": float(x)} for x in np.random.default_rng(seed).random(n) < rate]


def feed(step: StreamStep, batch: list[TrafficEvent], rows: list[dict[str, float]], first_offset: int) -> list:
    """What the agent does with a batch: admit, observe, checkpoint the changed segments, evict."""
    admitted = [(e, r) for offset, (e, r) in enumerate(zip(batch, rows, strict=True), first_offset)
                if step.admit(e, 0, offset)]  # fmt: skip
    outcomes = step.observe([e for e, _ in admitted], [r for _, r in admitted])
    step.checkpoint()
    step.evict()
    return outcomes.reached


def test_the_cap_holds_and_the_least_recently_used_are_evicted_to_their_checkpoint() -> None:
    store: dict[bytes, bytes] = {}
    step = step_of(store, max_live_segments=3)
    for i in range(10):
        feed(step, [event(i, tenant=f"t{i}")], [{"refusal": 0.0}], first_offset=i)
        assert len(step.monitors) <= 3
    assert list(step.monitors) == ["m/default/t7", "m/default/t8", "m/default/t9"]
    assert set(store) == {f"m/default/t{i}".encode() for i in range(10)}  # each checkpointed after its batch
    assert sample(step, "driftloop_segments_evicted_total") == 7
    assert sample(step, "driftloop_segments_live") == 3
    feed(step, [event(10, tenant="t0")], [{"refusal": 0.0}], first_offset=10)  # t0 comes back, t7 goes
    assert list(step.monitors) == ["m/default/t8", "m/default/t9", "m/default/t0"]
    assert step.monitors["m/default/t0"].events == 2


def test_an_evicted_segment_gives_the_outcomes_of_a_live_one() -> None:
    """The same events through a step that keeps the segment live and one that evicts it after every batch (another
    segment takes the only live place): the same incident, resolution, counts, positions and detectors."""
    rows = refusals(400, 0.05, seed=1) + refusals(120, 0.6, seed=2) + refusals(300, 0.05, seed=3)
    stream = [event(i) for i in range(len(rows))]
    live, evicting = step_of(), step_of(max_live_segments=1)
    reached: dict[str, list] = {"live": [], "evicting": []}
    for start in range(0, len(rows), 40):
        batch, batch_rows = stream[start : start + 40], rows[start : start + 40]
        reached["live"] += feed(live, batch, batch_rows, first_offset=start)
        reached["evicting"] += feed(evicting, batch, batch_rows, first_offset=start)
        feed(evicting, [event(start, tenant="other")], [{"refusal": 0.0}], first_offset=10_000 + start)
        assert SEGMENT not in evicting.monitors
    [incident, resolution] = reached["live"]
    assert isinstance(incident, DriftIncident) and isinstance(resolution, Resolution)
    [again, resolved_again] = reached["evicting"]
    assert again.model_dump(exclude={"evidence", "detected_at"}) == incident.model_dump(
        exclude={"evidence", "detected_at"}
    )
    # a checkpoint keeps no text of recent events: evidence from before the last eviction has none (as after a restart)
    assert not Counter(e.prompt for e in again.evidence) - Counter(e.prompt for e in incident.evidence)
    assert resolved_again == resolution
    kept, restored = live.segment(SEGMENT), evicting.segment(SEGMENT)
    assert (restored.events, restored.positions, restored.open_incident, restored.state) == (
        kept.events, kept.positions, kept.open_incident, kept.state
    )  # fmt: skip
    assert {n: (d.statistic, d.threshold) for n, d in restored.detectors.items()} == {
        n: (d.statistic, d.threshold) for n, d in kept.detectors.items()
    }
    assert not evicting.admit(stream[-1], 0, len(rows) - 1)  # redelivered after eviction: still filtered


def test_an_open_incident_and_the_topic_model_survive_eviction() -> None:
    topic_store: dict[bytes, bytes] = {}
    step = step_of(topic_store=topic_store, max_live_segments=1)
    feed(step, [event(i) for i in range(200)], refusals(200, 0.05, seed=1), first_offset=0)
    for vector in np.eye(8)[:5]:
        step.topics(SEGMENT).assign(vector)
    [incident] = feed(step, [event(i) for i in range(200, 300)], refusals(100, 0.9, seed=2), first_offset=200)
    feed(step, [event(0, tenant="other")], [{"refusal": 0.0}], first_offset=0)
    assert SEGMENT not in step.monitors and SEGMENT not in step.topic_models
    assert step.status(SEGMENT).open_incident == incident.id
    assert len(step.topics(SEGMENT).reference) == 5


def test_novelty_is_a_flag_set_when_a_segment_settles() -> None:
    monitor_store: dict[bytes, bytes] = {}
    step = step_of(monitor_store, max_live_segments=1)
    feed(step, [event(i) for i in range(150)], refusals(150, 0.05, seed=1), first_offset=0)
    assert not step.segment("m/default/early").novel  # nothing settled yet
    feed(step, [event(i) for i in range(150, 200)], refusals(50, 0.05, seed=1), first_offset=150)
    assert step.established
    feed(step, [event(0, tenant="late")], [{"refusal": 0.0}], first_offset=0)  # the settled one is evicted
    assert SEGMENT not in step.monitors and step.segment("m/default/late").novel
    late = [event(i, tenant="late") for i in range(1, 200)]
    [incident] = feed(step, late, refusals(199, 0.05, seed=2), first_offset=1)
    assert incident.kind is IncidentKind.NEW_SEGMENT and incident.segment == "m/default/late"


def test_a_pinned_reference_establishes_the_service() -> None:
    step = step_of()
    step.pin_reference("settled/default/default", refusals(200, 0.05, seed=1))
    assert step.segment("late/default/default").novel


@pytest.mark.parametrize("settled", [True, False])
def test_a_restarted_step_derives_the_flag_from_its_checkpoints(settled: bool) -> None:
    monitor_store: dict[bytes, bytes] = {}
    step = step_of(monitor_store)
    feed(
        step,
        [event(i) for i in range(200 if settled else 150)],
        refusals(200, 0.05, seed=1)[: 200 if settled else 150],
        0,
    )  # feed checkpoints
    restarted = step_of(monitor_store)
    assert restarted.segment("m/default/new").novel is settled
    assert restarted.established is settled


def test_a_segment_read_late_after_a_restart_is_new_only_if_its_events_came_after_the_service_settled() -> None:
    """Novelty is by event time, not by the order the worker reads its partitions in: events produced before
    another segment settled, read after a restart (their partition lagged), are an old segment's."""
    lagging = [event(i, tenant="lagging") for i in range(200)]  # produced first
    monitor_store: dict[bytes, bytes] = {}
    feed(step_of(monitor_store), [event(i) for i in range(200)], refusals(200, 0.05, seed=1), 0)  # settles later
    restarted = step_of(monitor_store)
    assert feed(restarted, lagging, refusals(200, 0.05, seed=2), 0) == []
    assert restarted.established and not restarted.segment("m/default/lagging").novel
    late = [event(i, tenant="late") for i in range(200)]  # produced after
    [incident] = feed(restarted, late, refusals(200, 0.05, seed=3), 0)
    assert incident.kind is IncidentKind.NEW_SEGMENT and incident.segment == "m/default/late"


def test_tenants_past_the_limit_fold_into_the_overflow_segment() -> None:
    step = step_of(segment_max_tenants=2)
    folded = [step.fold(event(i, tenant=tenant)).segment for i, tenant in enumerate(["a", "b", "c", "a", "d", "b"])]
    assert folded == ["m/default/a", "m/default/b", f"m/default/{OVERFLOW}", "m/default/a", f"m/default/{OVERFLOW}",
                      "m/default/b"]  # fmt: skip
    assert step.fold(event(9, tenant="c", model="other")).segment == "other/default/c"  # the limit is per model
    assert sample(step, "driftloop_events_folded_total", {"dimension": "tenant"}) == 2
    assert sample(step, "driftloop_events_folded_total", {"dimension": "route"}) == 0


def test_routes_fold_too_and_keep_their_tenant() -> None:
    step = step_of(segment_max_routes=1, segment_max_tenants=1)
    assert step.fold(event(0, route="chat", tenant="a")).segment == "m/chat/a"
    assert step.fold(event(1, route="search", tenant="a")).segment == f"m/{OVERFLOW}/a"
    assert step.fold(event(2, route="search", tenant="b")).segment == f"m/{OVERFLOW}/{OVERFLOW}"
    assert sample(step, "driftloop_events_folded_total", {"dimension": "route"}) == 2


def test_a_tenant_with_a_checkpoint_keeps_its_segment_after_a_restart() -> None:
    """The known tenants are not stored: a restarted step recognises those whose segment has a checkpoint, so new
    tenants that come first after the restart cannot push an established one into the overflow."""
    monitor_store: dict[bytes, bytes] = {}
    step = step_of(monitor_store, segment_max_tenants=2)
    for tenant in ("a", "b"):
        assert step.admit(step.fold(event(0, tenant=tenant)), partition=0, offset=0)
    step.checkpoint()
    restarted = step_of(monitor_store, segment_max_tenants=2)
    assert [restarted.fold(event(1, tenant=t)).segment for t in ("new", "a", "b", "newer")] == [
        "m/default/new", "m/default/a", "m/default/b", f"m/default/{OVERFLOW}"
    ]  # fmt: skip


def test_no_limit_folds_nothing() -> None:
    step = step_of()
    assert {step.fold(event(i, tenant=f"t{i}")).segment for i in range(50)} == {f"m/default/t{i}" for i in range(50)}


def test_the_agent_folds_evicts_and_records_statuses(services: Settings) -> None:
    """Through the agent, on a real Redis: 30 tenants, 10 with their own segment, at most 4 live."""
    config = stream_settings(segment_max_tenants=10, max_live_segments=4)
    store: dict[bytes, bytes] = {}
    step = StreamStep(config, store, {}, MonitorMetrics(CollectorRegistry()))
    records = [
        Record(event(i, tenant=f"t{i % 30}").model_dump_json(by_alias=True).encode(), partition=0, offset=i)
        for i in range(90)
    ]

    async def scenario() -> dict:
        redis = Redis.from_url(services.redis_url)
        await redis.flushdb()
        try:
            agent = TrafficAgent(step, redis, _ignore, IncidentSink(redis), _ignore, step.metrics)
            for start in range(0, len(records), 16):
                await agent.process(records[start : start + 16])
                assert len(step.monitors) <= 4
            return await SegmentStatuses(redis).all()
        finally:
            await redis.aclose()

    statuses = asyncio.run(scenario())
    assert set(statuses) == {f"m/default/t{i}" for i in range(10)} | {f"m/default/{OVERFLOW}"}
    assert statuses[f"m/default/{OVERFLOW}"].events == 60
    assert sum(step.segment(s).events for s in statuses) == 90
    assert sample(step, "driftloop_events_folded_total", {"dimension": "tenant"}) == 60
    assert sample(step, "driftloop_segments_evicted_total") >= len(statuses) - 4


async def _ignore(*_: object) -> None:
    """No dead letters or webhooks here."""
