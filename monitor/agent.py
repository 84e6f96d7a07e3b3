"""The traffic agent's work, without Faust: records in, the stream step, statuses, counters and incidents out.

:class:`TrafficAgent` runs :class:`~monitor.stream.StreamStep` on the event loop of the worker
(``driftloop.worker``): its CPU-heavy parts (features and language, embeddings, observing a batch, calibrating a
pinned reference) go to threads, and the segments' state changes under one lock, one change at a time. The I/O
around the step is here: dead letters, Redis statuses and counters, incidents published (through the function
it is given), incidents resolved by the monitor, Evidently reports, and the reference pins taken up from the API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
from redis.asyncio import Redis

from core.embeddings import embed
from core.redact import redact
from core.risk import exemplar_vectors
from monitor.events import InvalidEvent, TrafficEvent, parse_event
from monitor.incidents import DriftIncident, IncidentStatus, Resolution
from monitor.lifecycle import change_status, status_event
from monitor.metrics import MonitorMetrics
from monitor.records import SegmentStatuses, StreamStats
from monitor.references import ReferencePins
from monitor.reports import build_report, store_report
from monitor.segments import MIN_REFERENCE, Measurements
from monitor.sink import IncidentSink
from monitor.stream import EMBED_CHARS, StreamStep

log = logging.getLogger(__name__)

DEAD_LETTER_CHARS = 20_000
"""Characters of a rejected record that its redacted dead letter keeps (enough to see why it was rejected)."""
FetchRange = Callable[[str, datetime, datetime], list[TrafficEvent]]
"""The events of a segment in a time range of the traffic topic (blocking: run in a thread)."""


class Record(NamedTuple):
    """One record of the traffic topic: its raw value and its stream position."""

    value: bytes
    partition: int
    offset: int


async def measure(
    step: StreamStep, events: list[TrafficEvent], embed: Callable[[list[str]], np.ndarray] = embed
) -> list[Measurements]:
    """Each event's measurements: features and language (in a thread, so the loop fetches the next batch
    meanwhile) and, for the embedding sample, the prompt embeddings (in a thread) and what the step makes of
    them (on the loop: the topic models change one event at a time)."""
    inputs = await asyncio.to_thread(step.features, events)
    chosen = step.sample(events)
    if not chosen:
        return inputs
    vectors = await asyncio.to_thread(embed, [events[i].prompt_text[:EMBED_CHARS] for i in chosen])
    for i, semantics in zip(chosen, step.semantics([events[i] for i in chosen], vectors), strict=True):
        inputs[i] |= semantics
    return inputs


@dataclass
class TrafficAgent:
    """Feeds batches of traffic records through ``step``; ``dead_letter(key, value)`` sends to the dead-letter
    topic, ``sink`` stores and publishes an incident, ``announce(type, message id, data)`` sends a webhook event."""

    step: StreamStep
    redis: Redis
    dead_letter: Callable[[bytes, bytes], Awaitable[object]]
    sink: IncidentSink
    announce: Callable[[str, str, dict], Awaitable[object]]
    metrics: MonitorMetrics = field(default_factory=MonitorMetrics.default)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while the segments' state changes (in threads): one change at a time."""
    reports: set[asyncio.Task] = field(default_factory=set)
    """Running report builds (a reference keeps each task alive)."""
    keep_raw_dead_letters: bool = False
    """Dead letters keep the raw record (``DRIFTLOOP_DLQ_KEEP_RAW``) instead of a redacted copy."""

    def __post_init__(self) -> None:
        self.stats, self.statuses = StreamStats(self.redis), SegmentStatuses(self.redis)
        self.pins = ReferencePins(self.redis)

    async def warm_up(self) -> None:
        """With embeddings on, load the model and embed the attack exemplars before the first batch."""
        if self.step.settings.embeddings:
            await asyncio.to_thread(exemplar_vectors)

    async def process(self, records: Iterable[Record]) -> None:
        """Parse, drop redelivered events, measure, observe; checkpoint the segments changed, record their
        statuses, count; then resolve, publish and report what was reached."""
        self.metrics.last_event.set_to_current_time()
        started = time.perf_counter()
        events = []
        for record in records:
            try:
                event = parse_event(record.value)
            except InvalidEvent as error:
                await self.reject(record.value, error)
                continue
            if self.step.admit(event, record.partition, record.offset):
                events.append(event)
        if not events:
            return
        inputs = await measure(self.step, events)
        async with self.lock:
            outcomes = await asyncio.to_thread(self.step.observe, events, inputs)
        self.step.checkpoint()
        for segment in outcomes.segments:
            await self.statuses.record(self.step.status(segment))
        elapsed = time.perf_counter() - started
        for _ in events:
            self.metrics.processing.observe(elapsed / len(events))
        await self.stats.accepted(len(events))
        self.metrics.events.labels("accepted").inc(len(events))
        for outcome in outcomes.reached:
            if isinstance(outcome, Resolution):
                await self.resolve(outcome)
                continue
            await self.sink.emit(outcome)
            self.reports.add(asyncio.create_task(self.report(outcome, *outcomes.windows[outcome.id])))

    async def reject(self, raw: bytes, error: InvalidEvent) -> None:
        """Send a record that is not an event to the dead letters, with the reason; count it. The record goes
        redacted (its first :data:`DEAD_LETTER_CHARS` characters, personal data masked) unless
        ``keep_raw_dead_letters``."""
        event = raw.decode("utf-8", errors="replace")
        if not self.keep_raw_dead_letters:
            event = await asyncio.to_thread(redact, event[:DEAD_LETTER_CHARS])
        letter = {
            "reason": error.reason,
            "detail": error.detail,
            "received_at": datetime.now(UTC).isoformat(),
            "event": event,
            "redacted": not self.keep_raw_dead_letters,
        }
        await self.dead_letter(error.reason.encode(), json.dumps(letter).encode())
        await self.stats.rejected(error.reason)
        self.metrics.events.labels("rejected").inc()
        self.metrics.rejected.labels(error.reason).inc()

    async def report(self, incident: DriftIncident, reference: list[dict], current: list[dict]) -> None:
        """Render and store the incident's Evidently report off the event loop (it takes seconds of CPU)."""
        try:
            html = await asyncio.to_thread(build_report, incident, reference, current)
            await store_report(self.redis, incident.id, html)
        except ValueError as error:  # windows too small for a report: the incident stands without one
            log.warning("no report for incident %s: %s", incident.id, error)
        finally:
            self.reports.discard(asyncio.current_task())

    async def resolve(self, resolution: Resolution) -> None:
        """The monitor's auto-resolve: the stored incident moves to resolved and ``incident.resolved`` goes out."""
        changed = await change_status(self.redis, resolution.incident_id, IncidentStatus.RESOLVED, by="monitor")
        if changed is not None:
            await self.announce(*status_event(*changed))
            log.warning("incident %s resolved by the monitor", resolution.incident_id)

    async def apply_reference_pins(self, fetch: FetchRange) -> None:
        """Take up references pinned through the API (the range's events, read back with ``fetch``), and return
        released ones to rolling; only segments this worker monitors."""
        for change in await self.pins.pending():
            state = self.step.monitors.get(change.segment)
            if state is None:
                continue
            if change.pin is None:
                async with self.lock:
                    state.rebase()
                await self.pins.released(change.segment)
                continue
            pin = change.pin
            events = await asyncio.to_thread(fetch, pin.segment, pin.start, pin.end)
            rows = await measure(self.step, events) if events else []
            if len(rows) < MIN_REFERENCE:
                log.error(
                    "reference pin of %s: %d events in its range, at least %d needed; not applied",
                    pin.segment,
                    len(rows),
                    MIN_REFERENCE,
                )
                continue
            async with self.lock:
                await asyncio.to_thread(state.pin_reference, rows, [event.prompt_text for event in events])
            await self.pins.applied(pin, len(rows))
            log.warning(
                "segment %s: reference pinned to %d events of %s..%s", pin.segment, len(rows), pin.start, pin.end
            )
