"""Redis clients that ride out outages: each attempt of a command bounded by a timeout, failed attempts retried
with capped, jittered exponential backoff (redis-py's own retry, so every command, pipeline and reconnection
goes through it), and an outage logged once when it starts and once when it ends, with its length, and counted.

A worker's client retries as long as it takes (``attempts=None``): whoever awaits a command waits for Redis, so
a batch is neither lost nor skipped. It stops waiting when its task is cancelled, also when redis-py swallowed
the cancellation (:func:`core.tasks.cancel_requested`). The API's client gives up after a couple of attempts, so
a request answers 503 (:mod:`core.problems`) instead of hanging.

>>> import asyncio
>>> from prometheus_client import CollectorRegistry
>>> from redis.exceptions import ConnectionError
>>> health = RedisHealth(RedisMetrics(CollectorRegistry()))
>>> client = connect("redis://127.0.0.1:9/0", timeout_s=0.5, attempts=2, health=health)  # nothing listens on 9
>>> try:
...     asyncio.run(client.ping())
... except ConnectionError:
...     print("down:", health.down)
down: True
>>> health.metrics.registry.get_sample_value("driftloop_redis_outages_total")
1.0
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from core.metrics import RedisMetrics
from core.tasks import cancel_requested

log = logging.getLogger(__name__)
T = TypeVar("T")

BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 5.0
"""The longest wait between two attempts: how late, at most, a waiting client notices that Redis is back."""


class RedisHealth:
    """Whether Redis answers this process: each change logged once (an outage's end with its length) and
    counted on ``metrics``."""

    def __init__(self, metrics: RedisMetrics | None = None) -> None:
        self.metrics = metrics or RedisMetrics.default()
        self.down_since: float | None = None
        self.failures = 0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, error: Exception) -> None:
        """An attempt failed to connect or timed out."""
        self.metrics.errors.inc()
        self.failures += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.metrics.outages.inc()
            self.metrics.up.set(0)
            log.warning("Redis is unreachable (%s)", error)

    def answered(self) -> None:
        """An attempt succeeded."""
        if self.down_since is not None:
            log.warning(
                "Redis is back after %.1f s (%d failed attempts)", time.monotonic() - self.down_since, self.failures
            )
            self.down_since, self.failures = None, 0
            self.metrics.up.set(1)


class ObservedRetry(Retry):
    """redis-py's retry of connection errors and timeouts (up to ``retries`` times, forever when negative) that
    reports each attempt to ``health`` and stops retrying once its task is asked to stop."""

    def __init__(self, health: RedisHealth, retries: int) -> None:
        super().__init__(ExponentialWithJitterBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), retries)
        self.health = health

    def __deepcopy__(self, memo: dict[int, Any]) -> ObservedRetry:
        return self  # the client copies its retry into each connection: they share one health

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        async def attempt() -> T:
            result = await do()
            self.health.answered()
            return result

        async def failed(error: Exception, *count: int) -> None:
            self.health.failed(error)
            await fail(error, *count)
            if cancel_requested():
                raise asyncio.CancelledError(f"cancelled while waiting for Redis ({error})")

        return await super().call_with_retry(attempt, failed, is_retryable, with_failure_count)


def connect(url: str, timeout_s: float, attempts: int | None = None, health: RedisHealth | None = None) -> Redis:
    """A client of ``url`` whose command attempts each connect and answer within ``timeout_s``, tried up to
    ``attempts`` times (forever when None), reporting to ``health`` (the process's by default)."""
    retry = ObservedRetry(health or default_health(), -1 if attempts is None else attempts - 1)
    return Redis.from_url(url, retry=retry, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)


@cache
def default_health() -> RedisHealth:
    """The process's one :class:`RedisHealth`, on :meth:`RedisMetrics.default`."""
    return RedisHealth()
