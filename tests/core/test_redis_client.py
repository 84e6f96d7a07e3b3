"""The patient Redis client against a real redis-server that is not there yet, then is."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from core.metrics import RedisMetrics
from core.redis_client import RedisHealth, connect
from devtools.embedded import free_port, redis_server

pytestmark = pytest.mark.integration


def test_a_command_waits_for_redis_and_the_outage_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port, health = free_port(), RedisHealth(RedisMetrics(CollectorRegistry()))

    async def scenario() -> bool:
        client = connect(f"redis://127.0.0.1:{port}/0", timeout_s=1, health=health)
        waiting = asyncio.create_task(client.set("k", "v"))
        while health.failures < 3:
            await asyncio.sleep(0.05)
        assert not waiting.done()
        with redis_server(tmp_path, port):
            done = await waiting
            assert await client.get("k") == b"v"
        await client.aclose()
        return done

    with caplog.at_level(logging.WARNING, logger="core.redis_client"):
        assert asyncio.run(scenario()) is True
    assert [r.getMessage().split(" (")[0].split(" after")[0] for r in caplog.records] == [
        "Redis is unreachable",
        "Redis is back",
    ]
    registry = health.metrics.registry
    assert registry.get_sample_value("driftloop_redis_outages_total") == 1
    assert registry.get_sample_value("driftloop_redis_errors_total") >= 3
    assert registry.get_sample_value("driftloop_redis_up") == 1


def test_a_waiting_command_stops_when_its_task_is_cancelled() -> None:
    health = RedisHealth(RedisMetrics(CollectorRegistry()))

    async def scenario() -> None:
        client = connect(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1, health=health)
        waiting = asyncio.create_task(client.ping())
        while not health.down:
            await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await client.aclose()

    asyncio.run(scenario())
    assert health.down


def test_the_api_client_gives_up_after_its_attempts() -> None:
    health = RedisHealth(RedisMetrics(CollectorRegistry()))
    client = connect(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1, attempts=2, health=health)
    with pytest.raises(RedisConnectionError):
        asyncio.run(client.ping())
    assert health.down and health.metrics.registry.get_sample_value("driftloop_redis_outages_total") == 1
