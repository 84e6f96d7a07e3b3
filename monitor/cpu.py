"""CPU time of the stream step's stages, measured where they run: the thread CPU time (``time.thread_time``) of the
code of each stage, summed per stage for the whole process.

A stage entered inside another is its own (the outer one pauses meanwhile), so the totals add up to the CPU time the
threads spent in stages; what a stage hands to other threads is counted where it runs, what it hands to other
processes (calibration's pool) as the stage's when they report it (:meth:`StageClock.add`). The worker exports
the totals as ``driftloop_stage_cpu_seconds_total{stage}`` (:class:`StageCollector`), and ``bench.throughput``
prints them per event beside the worker's whole CPU time: the rest is Kafka I/O, Faust and the event loop.

>>> clock = StageClock()
>>> with clock.stage("outer"):
...     with clock.stage("inner"):
...         _ = sum(range(10**5))
>>> sorted(clock.totals()), clock.totals()["inner"] > 0
(['inner', 'outer'], True)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from prometheus_client.metrics_core import CounterMetricFamily
from prometheus_client.registry import Collector

T = TypeVar("T")


class StageClock:
    """Per-stage sums of thread CPU seconds; threads may use one clock at once."""

    def __init__(self) -> None:
        self._totals: dict[str, float] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Count the calling thread's CPU time in the block as ``name``'s (a stage entered inside it pauses it)."""
        stack: list[list] = self._local.__dict__.setdefault("stack", [])
        now = time.thread_time()
        if stack:
            self.add(stack[-1][0], now - stack[-1][1])
        stack.append([name, now])
        try:
            yield
        finally:
            now = time.thread_time()
            self.add(name, now - stack.pop()[1])
            if stack:
                stack[-1][1] = now

    def timed(self, name: str, function: Callable[..., T], *args: object) -> T:
        """``function(*args)``, counted as stage ``name`` (a form to hand to a thread)."""
        with self.stage(name):
            return function(*args)

    def add(self, name: str, seconds: float) -> None:
        """Count ``seconds`` of CPU time as ``name``'s (measured elsewhere)."""
        with self._lock:
            self._totals[name] = self._totals.get(name, 0.0) + seconds

    def totals(self) -> dict[str, float]:
        """Stage → CPU seconds so far."""
        with self._lock:
            return dict(self._totals)


CLOCK = StageClock()
"""The process's clock, which the stream step's stages count on."""


class StageCollector(Collector):
    """Exports a clock's totals as ``driftloop_stage_cpu_seconds_total{stage}``."""

    def __init__(self, clock: StageClock = CLOCK) -> None:
        self.clock = clock

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "driftloop_stage_cpu_seconds",
            "CPU seconds the worker's threads spent in each stage of the stream step (parse, language, features, "
            "embedding, detectors, calibration, checkpoint, redaction, redis)",
            labels=["stage"],
        )
        for stage, seconds in sorted(self.clock.totals().items()):
            family.add_metric([stage], seconds)
        yield family
