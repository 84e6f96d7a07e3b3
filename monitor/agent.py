"""The traffic agent's work, without Faust: records in, the stream step, statuses, counters and incidents out.

:class:`TrafficAgent` runs :class:`~monitor.stream.StreamStep` on the event loop of the worker
(``driftloop.worker``): its CPU-heavy parts (features and language, embeddings, observing a batch, calibrating a
pinned reference) go to threads, and the segments' state changes under one lock, one change at a time. The I/O
around the step is here: dead letters, Redis statuses and counters, incidents published (through the function
it is given), incidents resolved by the monitor, Evidently reports, the reference pins taken up from the API, and
the judge's sample offered and its scores attached (:mod:`monitor.judging`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
from redis.asyncio import Redis
from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential_jitter

from core.embeddings import EMBED_CHARS
from core.injection_model import injection_model, text_rows
from core.redact import redact
from core.risk import exemplar_vectors
from monitor import calibration_pool
from monitor.cpu import CLOCK
from monitor.events import InvalidEvent, TrafficEvent, parse_event
from monitor.features import Measurements
from monitor.incidents import CauseAdded, DriftIncident, IncidentStatus, InvalidTransition, Resolution
from monitor.judging import JudgeSampler
from monitor.lifecycle import change_status, status_event
from monitor.measure_ahead import MeasureAhead, Measured
from monitor.metrics import MonitorMetrics
from monitor.records import SegmentStatuses, StreamStats
from monitor.references import ReferencePins
from monitor.reports import build_report, store_report
from monitor.segments import MIN_REFERENCE
from monitor.sink import IncidentSink
from monitor.stream import Outcomes, StreamStep

log = logging.getLogger(__name__)

ATTEMPTS = 3
"""Tries of a batch's measurement and observation before it is observed event by event."""
RETRY_WAIT = wait_exponential_jitter(multiplier=0.1, max=2.0, jitter=0.1)
DEAD_LETTER_CHARS = 20_000
"""Characters of a rejected record that its redacted dead letter keeps (enough to see why it was rejected)."""
FetchRange = Callable[[str, datetime, datetime], list[TrafficEvent]]
"""The events of a segment in a time range of the traffic topic (blocking: run in a thread)."""


class Record(NamedTuple):
    """One record of the traffic topic: its raw value (``None`` for a null value), its stream position, its
    partition's high-water mark when it was fetched and the id of its log, the topic's (None: unknown), and its
    event when it was read already (:meth:`TrafficAgent.route`). A record forwarded to the segments topic keeps the
    position and log it had in the traffic topic: positions, redeliveries and resets are the traffic topic's,
    whichever way a record came. ``produced`` is when it was produced (Kafka's record timestamp, seconds; None when
    it has none; a forwarded record is sent with its traffic record's): the time of an event that does not say its
    own."""

    value: bytes | None
    partition: int
    offset: int
    highwater: int | None = None
    log: str | None = None
    produced: float | None = None
    event: TrafficEvent | None = None

    def source(self, topic: str) -> Source:
        """Where the record sits in the traffic topic ``topic`` (a forwarded record names its traffic record)."""
        return Source(topic, self.partition, self.offset)


class Source(NamedTuple):
    """A dead letter's source record: a consumer of the dead letters drops repeats by it (a worker killed after a
    dead letter's send, before its record's offset committed, has the record dead-lettered again by its successor)
    and reads the record back there when the letter is redacted."""

    topic: str
    partition: int
    offset: int


async def measure(
    step: StreamStep,
    events: list[TrafficEvent],
    embed: Callable[[list[str]], np.ndarray] | None = None,
    ahead: Sequence[Measured | None] | None = None,
) -> list[Measurements]:
    """Each event's measurements: those taken ahead (``ahead``, one per event, None for those that were not: see
    :mod:`monitor.measure_ahead`), the others' features and language (in a thread, so the loop fetches the next
    batch meanwhile) and, for the embedding sample, the prompt embeddings (taken ahead, or in a thread by ``embed``,
    else by the step's encoder) and what the step makes of them (on the loop: the topic models change one event at
    a time)."""
    ahead = ahead or [None] * len(events)
    missing = [i for i, found in enumerate(ahead) if found is None]
    measured = iter(await asyncio.to_thread(step.features, [events[i] for i in missing]) if missing else ())
    inputs = [next(measured) if found is None else dict(found[0]) for found in ahead]  # a retry starts afresh
    chosen = step.sample(events)
    if not chosen:
        return inputs
    unembedded = [i for i in chosen if ahead[i] is None or ahead[i][1] is None]
    fresh: dict[int, np.ndarray] = {}
    if unembedded:
        texts = [events[i].prompt_text[:EMBED_CHARS] for i in unembedded]
        computed = await asyncio.to_thread(CLOCK.timed, "embedding", embed or step.embed, texts)
        fresh = dict(zip(unembedded, computed, strict=True))
    vectors = np.stack([fresh[i] if i in fresh else ahead[i][1] for i in chosen])
    with CLOCK.stage("embedding"):
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
    max_event_bytes: int | None = None
    """Records larger than this are dead-lettered unread (``too_large``; ``DRIFTLOOP_MAX_EVENT_BYTES``)."""
    judge: JudgeSampler | None = None
    """Judges a sample of the responses off the stream; its scores join later events (``DRIFTLOOP_JUDGE_*``)."""
    ahead: MeasureAhead | None = None
    """Measures the records as they are fetched, in a helper process (``DRIFTLOOP_MEASURE_AHEAD``)."""

    def __post_init__(self) -> None:
        self.stats, self.statuses = StreamStats(self.redis), SegmentStatuses(self.redis)
        self.pins = ReferencePins(self.redis)

    async def warm_up(self) -> None:
        """Start the helper that measures ahead and the calibration pool's processes, load the redaction model (the
        first reference's checkpoint and dead letters redact) and, with embeddings on, the encoder with the attack
        exemplars embedded and the learned injection score (trained by ``make install``; its n-gram loop loaded, about
        0.3 s, or compiled where no cache is, about 1.4 s), before the first batch:
        not seconds into the stream."""
        if self.ahead is not None:
            self.ahead.start()
        await asyncio.gather(asyncio.to_thread(calibration_pool.start), asyncio.to_thread(redact, "warm-up"))
        if self.step.settings.embeddings:
            await asyncio.to_thread(exemplar_vectors, self.step.settings.embedding_model)
            await asyncio.to_thread(injection_model, self.step.settings.embedding_model)
            await asyncio.to_thread(text_rows, ["Warm up, please."])

    async def process(self, records: Iterable[Record]) -> None:
        """Parse, fold past the segment limits, drop redelivered events, measure, observe; checkpoint the segments
        changed, record their statuses, evict the least recently used beyond the cap, count; then resolve, publish
        and report what was reached. A record that cannot be read, or an event that still fails after
        :data:`ATTEMPTS` tries of its batch, goes to the dead letters; none stops the stream."""
        self.metrics.last_event.set_to_current_time()
        started = time.perf_counter()
        redelivered: set[str] = set()
        admitted = await self.admit(await self.read(records), redelivered)
        if not admitted:
            await self.record_statuses(redelivered)
            return
        events, outcomes = await self.observe(admitted)
        async with self.lock:
            snapshot = await asyncio.to_thread(CLOCK.timed, "checkpoint", self.step.snapshot, self.step.changed())
            CLOCK.timed("checkpoint", self.step.checkpoint, snapshot)
        await self.record_statuses([*outcomes.segments, *redelivered])  # the accepted count is their sum
        self.metrics.events.labels("accepted").inc(len(events))
        async with self.lock:
            self.step.evict()
        if not events:
            return
        elapsed = time.perf_counter() - started
        for _ in events:
            self.metrics.processing.observe(elapsed / len(events))
        for outcome in outcomes.reached:
            if isinstance(outcome, Resolution):
                await self.resolve(outcome)
                continue
            if isinstance(outcome, CauseAdded):
                await self.add_cause(outcome)
                continue
            await self.sink.emit(outcome)
            self.reports.add(asyncio.create_task(self.report(outcome, *outcomes.windows[outcome.id])))

    async def route(
        self, records: Iterable[Record], local: Callable[[str, int], bool]
    ) -> tuple[list[Record], list[tuple[str, Record]]]:
        """Read the traffic topic's records (the first hop: a record that cannot be read is dead-lettered here, never
        forwarded) and split them: those in their segment's partition (``local(segment, partition)``) stay, with
        their event, for :meth:`process`; the others are returned with their segment, to be forwarded to it."""
        here, away = [], []
        for record, event in await self.read(records):
            if local(event.segment, record.partition):
                here.append(record._replace(event=event))
            else:
                away.append((event.segment, record))
        self.metrics.forwarded.inc(len(away))
        return here, away

    async def forget(self) -> None:
        """Drop the live segments (a rebalance: another worker may have moved one on since; each is restored from
        its checkpoint, the newest, on its next event)."""
        async with self.lock:
            self.step.forget()
        if self.judge is not None:
            self.judge.forget()

    async def record_statuses(self, segments: Iterable[str]) -> None:
        """Record the statuses of ``segments`` (once each) as the API shows them."""
        with CLOCK.stage("redis"):  # the loop's thread: also counts what else the loop runs while Redis answers
            await self.statuses.record([self.step.status(segment) for segment in dict.fromkeys(segments)])

    async def admit(
        self, read: list[tuple[Record, TrafficEvent]], redelivered: set[str]
    ) -> list[tuple[Record, TrafficEvent]]:
        """The records whose events are new to their segment's state; the segments of the others (redelivered) are
        added to ``redelivered`` (their statuses are recorded again: the last one may predate a crash). One whose
        admission fails is dead-lettered."""
        admitted, failed = [], []
        with CLOCK.stage("parse"):
            for record, event in read:
                try:
                    event = self.step.fold(event)
                    new = self.step.admit(event, record.partition, record.offset, record.highwater, record.log)
                except Exception as error:  # a poison record must not stop the stream
                    log.exception("record %d of partition %d could not be admitted", record.offset, record.partition)
                    failed.append((record, InvalidEvent("unexpected_error", f"{type(error).__name__}: {error}")))
                    continue
                if new:
                    admitted.append((record, event))
                else:
                    redelivered.add(event.segment)
        for record, error in failed:
            await self.reject(record, error)
        return admitted

    async def read(self, records: Iterable[Record]) -> list[tuple[Record, TrafficEvent]]:
        """Each record with its event (read now, unless :meth:`route` read it), in order. A record that cannot be read
        is dead-lettered with the reason (a null value reads as empty, so as ``not_json``)."""
        read, failed = [], []
        with CLOCK.stage("parse"):  # once a batch: a stage's clock costs a few µs
            for record in records:
                if record.event is not None:
                    read.append((record, record.event))
                    continue
                try:
                    produced = None if record.produced is None else datetime.fromtimestamp(record.produced, UTC)
                    read.append((record, parse_event(record.value or b"", self.max_event_bytes, produced)))
                except InvalidEvent as error:
                    failed.append((record, error))
                except Exception as error:  # a poison record must not stop the stream
                    log.exception("record %d of partition %d could not be read", record.offset, record.partition)
                    failed.append((record, InvalidEvent("unexpected_error", f"{type(error).__name__}: {error}")))
        for record, error in failed:
            await self.reject(record, error)
        return read

    async def observe(self, admitted: list[tuple[Record, TrafficEvent]]) -> tuple[list[TrafficEvent], Outcomes]:
        """Measure and observe the events, their batch tried :data:`ATTEMPTS` times; then one by one, the events that
        still fail dead-lettered (``processing_error``). Returns the events observed and what they reached."""
        events = [event for _, event in admitted]
        ahead = self.ahead.ready([record.value for record, _ in admitted]) if self.ahead else [None] * len(events)
        taken = sum(found is not None for found in ahead)
        self.metrics.measured.labels("ahead").inc(taken)
        self.metrics.measured.labels("in_process").inc(len(events) - taken)
        try:
            async for attempt in AsyncRetrying(stop=stop_after_attempt(ATTEMPTS), wait=RETRY_WAIT, reraise=True):
                with attempt:
                    return events, await self.observed(events, ahead)
        except Exception:
            log.exception("a batch of %d events failed %d times: observing it event by event", len(events), ATTEMPTS)
        observed, reached, windows = [], [], {}
        for (record, event), found in zip(admitted, ahead, strict=True):
            try:
                outcomes = await self.observed([event], [found])
            except Exception as error:
                log.exception("event %s failed on its own too: dead-lettered", event.id)
                await self.reject(record, InvalidEvent("processing_error", f"{type(error).__name__}: {error}"))
                continue
            observed.append(event)
            reached += outcomes.reached
            windows |= outcomes.windows
        segments = list(dict.fromkeys(event.segment for _, event in admitted))
        return observed, Outcomes(reached, windows, segments)

    async def observed(self, events: list[TrafficEvent], ahead: list[Measured | None]) -> Outcomes:
        """Measure and observe ``events`` (``ahead``: their measurements taken ahead, see :func:`measure`); when that
        fails, their segments' state is put back as it was."""
        async with self.lock:
            saved = await asyncio.to_thread(
                CLOCK.timed, "undo", self.step.snapshot, {event.segment for event in events}
            )
        try:
            inputs = await measure(self.step, events, ahead=ahead)
            if self.judge is not None:
                self.judge.attach(events, inputs)
            async with self.lock:
                outcomes = await asyncio.to_thread(CLOCK.timed, "detectors", self.step.observe, events, inputs)
        except Exception:
            async with self.lock:
                self.step.restore(saved)
            raise
        if self.judge is not None:
            self.judge.offer(events)
        return outcomes

    async def reject(self, record: Record, error: InvalidEvent, source: Source | None = None) -> None:
        """Send a record that is not an event to the dead letters, with the reason and its ``source`` (default: its
        position in the traffic topic); count it. The record goes redacted (its first :data:`DEAD_LETTER_CHARS`
        characters, personal data masked) unless ``keep_raw_dead_letters``."""
        event = (record.value or b"").decode("utf-8", errors="replace")
        if not self.keep_raw_dead_letters:
            event = await asyncio.to_thread(redact, event[:DEAD_LETTER_CHARS])
        letter = {
            "reason": error.reason,
            "detail": error.detail,
            "received_at": datetime.now(UTC).isoformat(),
            "source": (source or record.source(self.step.settings.traffic_topic))._asdict(),
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
            model = self.step.settings.embedding_model
            html = await asyncio.to_thread(build_report, incident, reference, current, model)
            await store_report(self.redis, incident.id, html)
        except ValueError as error:  # windows too small for a report: the incident stands without one
            log.warning("no report for incident %s: %s", incident.id, error)
        except Exception:  # a report is an aid: its failure is logged, the incident stands without one
            log.exception("no report for incident %s: building it failed", incident.id)
        finally:
            self.reports.discard(asyncio.current_task())

    async def add_cause(self, added: CauseAdded) -> None:
        """Name a new cause on the open incident (stored, published again: its job starts) and announce it
        (``incident.cause_added``, once per incident and cause kind)."""
        incident = await self.sink.add_cause(added)
        if incident is not None:
            message_id = f"{incident.id}:{added.cause.kind}"
            await self.announce("incident.cause_added", message_id, incident.model_dump(mode="json"))

    async def resolve(self, resolution: Resolution) -> None:
        """The monitor's auto-resolve: the stored incident moves to resolved and ``incident.resolved`` goes out; an
        incident a verified candidate closed as fixed stays as it is."""
        try:
            changed = await change_status(self.redis, resolution.incident_id, IncidentStatus.RESOLVED, by="monitor")
        except InvalidTransition as refused:
            log.warning(
                "incident %s stays %s: the monitor saw its segment return", refused.incident_id, refused.current
            )
            return
        if changed is not None:
            await self.announce(*status_event(*changed))
            log.warning("incident %s resolved by the monitor", resolution.incident_id)

    async def apply_reference_pins(self, fetch: FetchRange) -> None:
        """Take up references pinned through the API (the range's events, read back with ``fetch``), and return
        released ones to rolling; only segments this worker monitors (live or evicted to their checkpoint: looked up
        under the lock, which eviction takes too)."""
        for change in await self.pins.pending():
            if not self.step.holds(change.segment):
                continue
            if change.pin is None:
                async with self.lock:
                    self.step.segment(change.segment).rebase()
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
                prompts = [event.prompt_text for event in events]
                await asyncio.to_thread(self.step.pin_reference, change.segment, rows, prompts)
            await self.pins.applied(pin, len(rows))
            log.warning(
                "segment %s: reference pinned to %d events of %s..%s", pin.segment, len(rows), pin.start, pin.end
            )
