"""Measuring ahead through a real worker (embeddings on): the helper process measures the records the consumer
fetches, the worker takes its measurements, and every event is accepted and in its segment's state once, a poison
record among them dead-lettered as without the helper."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.embedded import worker_process
from devtools.traffic import shifted_stream
from driftloop.kafka import ensure_topics, replay
from driftloop.settings import Settings
from monitor.measure_ahead import CHUNK
from tests.integration.helpers import accepted, segment_events, topic_messages, wait_for

pytestmark = pytest.mark.integration
FIRST, REST = 300, 1500


def measured(settings: Settings) -> dict[str, float]:
    """``driftloop_events_measured_total`` of the worker, by ``where``."""
    text = httpx.get(f"http://127.0.0.1:{settings.worker_metrics_port}/metrics").text
    family = next(f for f in text_string_to_metric_families(text) if f.name == "driftloop_events_measured")
    return {sample.labels["where"]: sample.value for sample in family.samples if sample.name.endswith("_total")}


def test_the_worker_takes_what_its_helper_measured_and_loses_nothing(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"embeddings": True})
    events = [json.dumps(event).encode() for event in shifted_stream(FIRST + REST, None, seed=5)]
    ensure_topics(settings)
    with worker_process(settings, tmp_path / "worker.log") as worker:
        first = replay(events[:FIRST], settings)  # the worker is up, its helper started: the rest is measured ahead
        wait_for(lambda: accepted(settings) >= FIRST, 120, "the first events")
        rest = replay([*events[FIRST : FIRST + REST // 2], b"not json", *events[FIRST + REST // 2 :]], settings)
        wait_for(lambda: accepted(settings) >= FIRST + REST, 180, "the rest of the events")
        letters = wait_for(lambda: topic_messages(settings, settings.dlq_topic), 30, "the dead letter")
        counts = measured(settings)
        assert worker.poll() is None, "the worker died"
    assert (first.failed, rest.failed) == (0, 0)
    assert accepted(settings) == segment_events(settings) == FIRST + REST
    assert [letter["reason"] for letter in letters] == ["not_json"]
    assert counts["ahead"] + counts["in_process"] == FIRST + REST
    assert counts["ahead"] >= CHUNK, counts


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (its helper, its calibration pool, multiprocessing's resource tracker)."""
    return [
        int(child) for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()
    ]


def test_the_workers_helpers_killed_mid_stream_lose_nothing(settings: Settings, tmp_path: Path) -> None:
    """Every process the worker started is SIGKILLed between two halves of the traffic: the worker notices its dead
    helper, measures the rest itself and accepts every event once."""
    settings = settings.model_copy(update={"embeddings": True})
    events = [json.dumps(event).encode() for event in shifted_stream(3000, None, seed=7)]
    ensure_topics(settings)
    with worker_process(settings, tmp_path / "worker.log") as worker:
        replay(events[:1000], settings)
        wait_for(lambda: accepted(settings) >= 1000, 120, "the first half")
        before = measured(settings)
        killed = children(worker.pid)
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        replay(events[1000:], settings)
        wait_for(lambda: accepted(settings) >= len(events), 240, "the second half")
        after = measured(settings)
        assert worker.poll() is None, "the worker died with its helpers"
    assert len(killed) >= 3, killed  # the helper, two calibration processes (and the resource tracker)
    assert accepted(settings) == segment_events(settings) == len(events)
    assert after["ahead"] + after["in_process"] == len(events)
    assert after["in_process"] - before["in_process"] >= len(events) - 1000 - CHUNK, (before, after)
    assert "measuring ahead stopped" in (tmp_path / "worker.log").read_text()
