"""Shared fixtures: a real tansu broker and redis-server for the session, on free ports."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from fastapi.testclient import TestClient

from driftloop.api import create_api
from driftloop.embedded import ServiceUnavailable, free_port, with_services
from driftloop.settings import Settings

T = TypeVar("T")
REQUIRE_SERVICES = os.environ.get("DRIFTLOOP_REQUIRE_SERVICES") == "1"


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at a tansu broker and a redis-server that this session started."""
    try:
        with with_services(
            Settings(_env_file=None, kafka_bootstrap=None, redis_url=None), tmp_path_factory.mktemp("services")
        ) as settings:
            yield settings
    except ServiceUnavailable as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"DRIFTLOOP_REQUIRE_SERVICES=1 but {exc}")
        pytest.skip(f"embedded services unavailable: {exc}")


@pytest.fixture
def settings(services: Settings, tmp_path: Path) -> Settings:
    """Per-test settings: own topics, consumer group and data dir on the session's services; empty Redis."""
    suffix = uuid.uuid4().hex[:8]
    redis.Redis.from_url(services.redis_url).flushdb()
    return services.model_copy(
        update={
            "app_id": f"driftloop-test-{suffix}",
            "traffic_topic": f"llm.traffic.{suffix}",
            "dlq_topic": f"llm.traffic.dlq.{suffix}",
            "incidents_topic": f"driftloop.incidents.{suffix}",
            "finetune_topic": f"finetune.requests.{suffix}",
            "data_dir": tmp_path / "data",
            "webhook_backoff_s": 0.05,
            "worker_metrics_port": free_port(),
            "api_port": free_port(),
        }
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The API on the test's services, as an HTTP client."""
    with TestClient(create_api(settings)) as api:
        yield api


def wait_for(check: Callable[[], T], timeout: float, what: str, every: float = 0.25) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
