"""At-least-once into the detectors: every event the broker holds is in the segments' state exactly once, whatever
happens to the workers."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from devtools.embedded import worker_process
from devtools.traffic import shifted_stream
from driftloop.kafka import ensure_topics, replay
from driftloop.settings import Settings
from tests.integration.helpers import segment_events, wait_for

pytestmark = pytest.mark.integration
EVENTS = 3000
RATE, SLOW = 100, 600
"""Events/s and count of the traffic sent at a gateway's pace (each batch holds a few events of each segment)."""


def committed(settings: Settings) -> int:
    """The worker group's committed offset on the traffic topic, all partitions together."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        offsets = admin.list_group_offsets(settings.app_id)[settings.app_id]
    finally:
        admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == settings.traffic_topic and meta.offset > 0)


def next_commit(settings: Settings, after: int) -> int:
    """The committed offset, once a commit passed ``after``."""
    return wait_for(lambda: (offset := committed(settings)) > after and offset, 120, f"a commit past {after}", 0.05)


def test_killed_workers_leave_every_event_in_the_detectors_once(settings: Settings, tmp_path: Path) -> None:
    """SIGKILL twice mid-stream, each time just after the worker committed offsets of events that came at a gateway's
    pace: the segments' event counts sum to the events sent, none lost, none twice."""
    ensure_topics(settings)
    lines = [json.dumps(event) for event in shifted_stream(EVENTS, None, seed=21)]
    log, sent = tmp_path / "worker.log", 0
    for _ in range(2):
        with worker_process(settings, log) as worker:
            sent += replay(lines[sent : sent + 100], settings).sent
            next_commit(settings, sent - 1)  # the worker is up and committing
            paced = lines[sent : sent + SLOW]
            producer = threading.Thread(target=replay, args=(paced, settings), kwargs={"rate": RATE})
            producer.start()
            next_commit(settings, sent)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
            producer.join()
            sent += len(paced)
    with worker_process(settings, log):
        replay(lines[sent:], settings)
        next_commit(settings, EVENTS - 1)  # every event processed
    assert segment_events(settings) == EVENTS
