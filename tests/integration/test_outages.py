"""Dependencies that blink: a worker process and the API against a private redis-server (and broker) that the
test stops and starts again, while the session's services stay up."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from devtools.embedded import free_port, kafka_broker, redis_server, worker_process
from devtools.traffic import shifted_stream
from driftloop.api import create_api
from driftloop.kafka import ensure_topics, replay
from driftloop.settings import Settings
from tests.integration.helpers import accepted, segment_events, wait_for

pytestmark = pytest.mark.integration
ADMIN = "dl_outage-test-admin-token"
OUTAGE_S = 10


def lines(count: int, seed: int) -> list[str]:
    return [json.dumps(event) for event in shifted_stream(count, None, seed=seed)]


def metric(settings: Settings, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{settings.worker_metrics_port}/metrics").text
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def test_worker_and_api_ride_out_a_redis_outage(settings: Settings, tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "redis"
    data.mkdir()
    redis = contextlib.ExitStack()
    url = redis.enter_context(redis_server(data, port))
    settings = settings.model_copy(update={"redis_url": url, "admin_token": SecretStr(ADMIN)})
    before, during = lines(800, seed=21), lines(400, seed=22)
    ensure_topics(settings)
    log = tmp_path / "worker.log"
    with worker_process(settings, log) as worker, TestClient(create_api(settings)) as api:
        replay(before, settings)
        wait_for(lambda: accepted(settings) >= 200, 120, "the worker to be mid-stream")
        redis.close()  # Redis goes away under traffic

        replay(during, settings)
        time.sleep(OUTAGE_S)
        assert worker.poll() is None, "the worker died while Redis was down"
        readiness = api.get("/readyz")
        assert readiness.status_code == 503 and readiness.json()["checks"] == {"redis": False, "kafka": True}
        for headers in ({"Authorization": f"Bearer {ADMIN}"}, {"Authorization": "Bearer dl_unknown"}, {}):
            answer = api.get("/v1/incidents", headers=headers)
            assert answer.status_code == 503, (headers, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert int(answer.headers["retry-after"]) > 0

        with redis_server(data, port):  # back on its data
            sent = len(before) + len(during)
            wait_for(lambda: accepted(settings) >= sent, 120, "every event to be counted after the outage")
            assert accepted(settings) == sent
            assert segment_events(settings) == sent
            assert worker.poll() is None
            assert api.get("/readyz").status_code == 200
            assert api.get("/v1/incidents", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
            assert api.get("/v1/incidents").status_code == 401
            assert metric(settings, "driftloop_redis_errors_total") > 0
            outages = metric(settings, "driftloop_redis_outages_total")
            # read while Redis is up: logged once per change of state, not per attempt (a stopping redis-server
            # may answer once more)
            text = log.read_text()
            assert 1 <= text.count("Redis is unreachable") == text.count("Redis is back") == outages <= 2, text[-3000:]


def test_sigterm_stops_a_worker_whose_broker_and_redis_are_gone(settings: Settings, tmp_path: Path) -> None:
    services = contextlib.ExitStack()
    broker = services.enter_context(kafka_broker(tmp_path))
    url = services.enter_context(redis_server(tmp_path))
    settings = settings.model_copy(update={"kafka_bootstrap": broker, "redis_url": url})
    ensure_topics(settings)
    log = tmp_path / "worker.log"
    with worker_process(settings, log) as worker:
        replay(lines(200, seed=23), settings)
        wait_for(lambda: accepted(settings) >= 200, 120, "the worker to take the traffic")
        services.close()
        wait_for(lambda: "Unable connect to node" in log.read_text(), 30, "the worker to notice")
        time.sleep(OUTAGE_S)
        # the broker's connection errors are summarised, not logged once per attempt (~70 a second before)
        errors = Counter(line.split("] ", 3)[-1] for line in log.read_text().splitlines() if "[ERROR]" in line)
        assert errors and max(errors.values()) == 1, errors.most_common(3)
        text = log.read_text()  # down now: one more "unreachable" than "back", not a line per attempt
        assert text.count("Redis is unreachable") == text.count("Redis is back") + 1 <= 2, text[-3000:]
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("the worker was still running 10 s after SIGTERM:\n" + log.read_text()[-3000:])
