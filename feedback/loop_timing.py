"""How long an incident takes to reach ``finetune.requests``, stage by stage (:data:`feedback.metrics.STAGES`).

The first two stages come from the records' timestamps (the incident's ``detected_at``, the job's ``created_at``
and the latest attempt's ``started_at``), the others are timed as the attempt that publishes runs them.

>>> timing = LoopTiming()
>>> with timing.stage("writing"):
...     pass
>>> list(timing.seconds)
['writing']
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from feedback.jobs import GenerationJob
from feedback.metrics import FeedbackMetrics
from monitor.incidents import DriftIncident


def _between(start: datetime, end: datetime) -> float:
    """Seconds from ``start`` to ``end``, never negative (the clocks of two hosts may disagree)."""
    return max(0.0, (end - start).total_seconds())


@dataclass
class LoopTiming:
    """The timed stages of one job attempt, in seconds by stage."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - start

    def observe(self, incident: DriftIncident, job: GenerationJob, metrics: FeedbackMetrics) -> None:
        """Record every stage of ``incident``'s way to its published dataset (``job`` as it ran), and the whole way:
        from the incident opening to now."""
        started = job.started_at or job.created_at
        stages = {"recipe": _between(incident.detected_at, job.created_at), "queued": _between(job.created_at, started)}
        for stage, seconds in (stages | self.seconds).items():
            metrics.loop_stage_seconds.labels(stage).observe(seconds)
        metrics.loop_seconds.observe(_between(incident.detected_at, datetime.now(UTC)))
