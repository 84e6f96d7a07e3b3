"""What every app's metrics class shares: its metrics live on the registry it is given, and ``default()`` is the
process's one instance on prometheus_client's default ``REGISTRY`` (what a process's ``/metrics`` serves).

Code that counts takes a metrics object as a parameter defaulting to ``default()``, so a test passes one built
on a fresh ``CollectorRegistry`` and asserts on that registry alone.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import ClassVar, Self

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


class AppMetrics:
    """Base of an app's metrics class: a subclass makes its metrics on ``registry`` in ``__init__``.

    >>> class Calls(AppMetrics):
    ...     def __init__(self, registry: CollectorRegistry) -> None:
    ...         super().__init__(registry)
    ...         self.calls = self.counter("demo_calls_total", "Calls made")
    >>> one, two = Calls(CollectorRegistry()), Calls(CollectorRegistry())
    >>> one.calls.inc(2)
    >>> one.registry.get_sample_value("demo_calls_total"), two.registry.get_sample_value("demo_calls_total")
    (2.0, 0.0)
    """

    _defaults: ClassVar[dict[type[AppMetrics], AppMetrics]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(name, documentation, labels, registry=self.registry)

    def histogram(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
    ) -> Histogram:
        return Histogram(name, documentation, labels, registry=self.registry, buckets=buckets)

    @classmethod
    def default(cls) -> Self:
        """This class's metrics on the default registry, made on first use (from any thread) and shared after."""
        with AppMetrics._lock:
            if cls not in AppMetrics._defaults:
                AppMetrics._defaults[cls] = cls(REGISTRY)
            return AppMetrics._defaults[cls]  # type: ignore[return-value]


class RedisMetrics(AppMetrics):
    """Redis as every process's client sees it (:mod:`core.redis_client`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.outages = self.counter("driftloop_redis_outages", "Times Redis stopped answering this process")
        self.errors = self.counter(
            "driftloop_redis_errors", "Attempts of Redis commands that failed to connect or timed out"
        )
        self.up = self.gauge("driftloop_redis_up", "1 while Redis answers this process's commands, 0 during an outage")
        self.up.set(1)
