"""Events measured ahead, in a process of their own, as the consumer fetches their records (embeddings on).

With embeddings on, the stream step spends about 330 µs of CPU an event measuring (language, features, the prompt
embedding), then observes the batch, one batch after the other on one core. A measurement is a function of the
record's bytes and the settings alone, so it can be taken early and elsewhere: the worker hands every traffic record
it fetches to :class:`MeasureAhead`, whose helper process parses and measures them while the worker's process
observes the batches before them (the consumer fetches well ahead of the batch it hands on). The step takes the
measurements that are ready, found by the record's bytes, and measures the rest itself: a record the helper has not
reached, one it did not get, or every record while it starts or after it died. So the helper changes when a
measurement is taken, never what it is (:func:`measure_events` is the one way to measure, in either process), and
nothing waits for it.

Only with embeddings on: without them a measurement is about 110 µs, and handing it over costs the worker's
process about 15 µs an event while the helper competes for the cores with it, the broker and Redis. Five pairs of
``python -m bench.throughput`` runs (30,000 events, helper off / on, one after the other): embeddings on, 1.20× the
events/s (median; 1.00-1.26×), 1.23× once calibrated; embeddings off, 0.90× (0.84-1.27×).

Its CPU time counts as the stages it ran (``language``, ``features``, ``embedding``) on :data:`monitor.cpu.CLOCK`.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from core.embeddings import EMBED_CHARS, Model, embed
from monitor.calibration_pool import serve
from monitor.cpu import CLOCK
from monitor.events import InvalidEvent, TrafficEvent, parse_event, sampled
from monitor.features import Measurements, extract_features, measurements
from monitor.language import detect_languages
from monitor.prices import PriceTable

log = logging.getLogger(__name__)

KEPT = 8192
"""Records measured ahead that are kept, by chunks, the oldest chunk dropped first: records never taken (dead-lettered,
redelivered, forwarded to another worker, of a partition revoked) keep their chunk's results no longer than that."""
CHUNK = 128
"""Records sent to the helper at once."""
IN_FLIGHT = 32
"""Chunks sent and not yet measured, at most (as many records as Faust's stream buffer holds): past them the records
are left to the step, so a helper that falls behind (while it loads its models) or hangs holds no backlog."""
WARM_UP = b'{"schema": "driftloop.traffic/v1", "id": "warm-up", "model": "m", "prompt": "Warm up, please."}'
"""A record the helper measures as it starts: its models are loaded before the stream's first batch."""
Measured = tuple[Measurements, np.ndarray | None]
"""An event's measurements and, when it is in the embedding sample, its prompt's embedding."""


@dataclass(frozen=True)
class Recipe:
    """What an event's measurements depend on besides its record: the prices, the largest record read, and the
    encoder of the embedding sample and its share of the events."""

    prices: PriceTable
    max_event_bytes: int | None
    embedding_model: Model
    sample_rate: float


def measure_events(events: Sequence[TrafficEvent], prices: PriceTable) -> list[Measurements]:
    """Each event's features (its cost at ``prices``) and language."""
    with CLOCK.stage("language"):
        languages = detect_languages([event.prompt_text for event in events])
    with CLOCK.stage("features"):
        return [
            measurements(extract_features(event, language, prices), language)
            for event, language in zip(events, languages, strict=True)
        ]


def measure_records(recipe: Recipe, values: Sequence[bytes]) -> tuple[list[Measured | None], dict[str, float]]:
    """The measurements of each record (None: not an event) and the CPU seconds of each stage (run in the helper)."""
    before = CLOCK.totals()
    events = [_read(value, recipe.max_event_bytes) for value in values]
    read = [i for i, event in enumerate(events) if event is not None]
    measured = dict(zip(read, measure_events([events[i] for i in read], recipe.prices), strict=True))
    chosen = [i for i in read if sampled(events[i].id, recipe.sample_rate)]
    with CLOCK.stage("embedding"):
        prompts = [events[i].prompt_text[:EMBED_CHARS] for i in chosen]
        vectors = dict(zip(chosen, embed(prompts, recipe.embedding_model), strict=True))
    results = [(measured[i], vectors.get(i)) if i in measured else None for i in range(len(values))]
    return results, {stage: seconds - before.get(stage, 0.0) for stage, seconds in CLOCK.totals().items()}


def _read(value: bytes, max_event_bytes: int | None) -> TrafficEvent | None:
    try:
        return parse_event(value, max_event_bytes)
    except InvalidEvent:
        return None


class MeasureAhead:
    """The worker's helper process and the measurements it made (see the module docstring). :meth:`fetched` takes
    the records as the consumer fetches them; :meth:`ready` gives the stream step those measured by then."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.waiting: dict[bytes, None] = {}
        """Records fetched and not sent yet, in order (a dict: the step's taking one removes it)."""
        self.chunks: OrderedDict[Future, set[bytes]] = OrderedDict()
        """Chunks sent, oldest first, with their records not taken yet (a chunk's results live while one is left)."""
        self.measured: dict[bytes, tuple[Future, int]] = {}
        self.in_flight: set[Future] = set()
        """Chunks sent and not measured yet (those whose records the step took meanwhile included)."""
        self.pool: ProcessPoolExecutor | None = None
        self.failed = False

    def start(self) -> None:
        """Start the helper process; it loads its models on a first record meanwhile (nothing waits for it)."""
        if self.pool is None:
            self.pool = ProcessPoolExecutor(1, multiprocessing.get_context("spawn"), initializer=serve)
            self.pool.submit(measure_records, self.recipe, [WARM_UP]).add_done_callback(self._finished)

    def stop(self) -> None:
        """Stop the helper process, at once: what it measures then is dropped, and a helper that hangs holds up no
        exit."""
        if self.pool is not None:
            for process in list(self.pool._processes.values()):  # the executor has no public way to end them
                process.terminate()
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
        self.waiting, self.chunks, self.measured, self.in_flight = {}, OrderedDict(), {}, set()

    def fetched(self, value: bytes | None) -> None:
        """A record fetched from a traffic topic, to measure ahead. Records go to the helper :data:`CHUNK` at once,
        none before (a chunk costs the worker's process about 19 µs an event at 128 records, 47 at 16, 245 one at a
        time: passing them and their results, in threads that hold the GIL), and a record the step took meanwhile is
        not sent; so under light traffic, which needs no help, the step measures them itself and the helper idles."""
        if value:
            self.waiting[value] = None
        if len(self.waiting) >= CHUNK:
            self.send(list(self.waiting))
            self.waiting = {}

    def send(self, values: list[bytes]) -> None:
        """Have the helper measure ``values`` unless :data:`IN_FLIGHT` chunks are waiting; a helper that is gone is
        not replaced (the step measures them)."""
        self.in_flight = {future for future in self.in_flight if not future.done()}
        if self.pool is None or len(self.in_flight) >= IN_FLIGHT:
            return
        try:
            future = self.pool.submit(measure_records, self.recipe, values)
        except RuntimeError as error:  # the helper died (BrokenProcessPool) or stopped: measured in process
            log.warning("measuring ahead stopped (%r): the stream step measures every event", error)
            self.pool = None
            return
        future.add_done_callback(self._finished)
        self.in_flight.add(future)
        self.chunks[future] = set(values)
        self.measured |= {value: (future, index) for index, value in enumerate(values)}
        while len(self.chunks) > KEPT // CHUNK:
            self._forget(*self.chunks.popitem(last=False))

    def ready(self, values: Sequence[bytes | None]) -> list[Measured | None]:
        """The measurements of each record found measured (None for the others: measure them in process). Each is
        taken once: a record read again is measured in process."""
        found: list[Measured | None] = []
        for value in values:
            self.waiting.pop(value, None)
            entry = self.measured.pop(value, None) if value else None
            if entry is None:
                found.append(None)
                continue
            future, index = entry
            left = self.chunks[future]
            left.discard(value)
            if not left:
                del self.chunks[future]
            done = future.done() and not future.cancelled() and future.exception() is None
            found.append(future.result()[0][index] if done else None)
        return found

    def _forget(self, future: Future, values: set[bytes]) -> None:
        for value in values:
            if self.measured.get(value, (None,))[0] is future:
                del self.measured[value]

    def _finished(self, future: Future) -> None:
        """Count a chunk's CPU as its stages (in the executor's thread: the clock has a lock); say why the first
        chunk that failed did."""
        if future.cancelled():
            return
        if (error := future.exception()) is None:
            for stage, seconds in future.result()[1].items():
                CLOCK.add(stage, seconds)
        elif not self.failed:
            self.failed = True
            log.warning("the helper failed to measure a chunk (%r): the stream step measures its records", error)
