"""The monitor's stream step: traffic events in, measurements, then incidents, resolutions and checkpoints out.

:class:`StreamStep` owns the live state of the segments this worker monitors (a
:class:`~monitor.segments.SegmentMonitor` and a :class:`~monitor.topics.TopicModel` each) and everything done
to it, synchronously and without I/O: a segment's state comes from its last checkpoint in an injected store
(anything with ``get`` and item assignment: Faust tables in the worker, dicts in tests and benchmarks), an event
already in that state (redelivered after a crash) is dropped by its stream position, events are measured
(:meth:`~StreamStep.features`, then :meth:`~StreamStep.semantics` for the embedding sample) and observed per
segment (:meth:`~StreamStep.observe`), and every segment changed since the last checkpoint is written by
:meth:`~StreamStep.checkpoint` (the worker does it once a batch, and acknowledges the batch's events once the
writes are durable). Which part runs in a thread and under which lock is the caller's choice (:mod:`monitor.agent`).

Memory stays bounded however many segments the traffic names:

- an event's route and tenant past their limits per model (``segment_max_routes``, ``segment_max_tenants``) fold
  into :data:`~monitor.cardinality.OVERFLOW` (:meth:`~StreamStep.fold`, first thing after parsing). The fold
  rewrites the event itself, so :attr:`TrafficEvent.segment <monitor.events.TrafficEvent.segment>` stays the one
  definition of the segment key: positions, detectors, checkpoints, statuses and incidents all see the folded
  segment. Producers cannot know what folds, and the worker repartitions traffic by the event's own values
  (``driftloop.repartition``): with several workers, each folds the traffic of its partitions under its own limits,
  and an overflow segment may have state on several workers, each with the overflow of its own partitions;
- at most ``max_live_segments`` segments stay in memory: after each batch the least recently used beyond it are
  checkpointed and dropped (:meth:`~StreamStep.evict`), and restored from their checkpoint on their next event,
  events, positions, detectors and open incident included. Like a restart, a restored segment has the features of
  its recent events but not their text (evidence of an incident that opens soon after shows fewer events);
- a new segment is ``novel`` (a ``new-segment`` incident once its reference is in) when its first event came after
  the service was established (:attr:`~StreamStep.established_at`: the earliest time a segment settled, by the time
  of the event that completed its reference, or was pinned), by event time, not the order the worker happened to
  read its partitions in: after a restart, a lagging partition's old segments are not new. A restarted worker
  derives it once from the checkpoints (the first settled one it finds), not a scan of all segments.

>>> from types import SimpleNamespace
>>> settings = SimpleNamespace(detector_service_ert=1e6, detector_warmup=50, reference_events=800, resolve_events=500)
>>> step = StreamStep(settings, {}, {})
>>> event = TrafficEvent(id="e1", model="m", prompt="hello")
>>> step.admit(event, partition=0, offset=7), step.admit(event, partition=0, offset=7)
(True, False)
>>> step.segment("m/default/default").positions
{0: 7}
>>> step.checkpoint(), step.checkpoint()
(['m/default/default'], [])
"""

from __future__ import annotations

import logging
import pickle
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Protocol, TypeVar

import numpy as np

from core.embeddings import Model, embed
from core.injection_model import injection_learned
from core.risk import injection_similarity
from monitor.cardinality import Cardinality
from monitor.events import TrafficEvent, sampled
from monitor.features import DEFAULT_TABLE, TOPIC_FEATURES, Measurements, measurements, semantic_features
from monitor.incidents import DriftIncident, Outcome
from monitor.measure_ahead import measure_events
from monitor.metrics import MonitorMetrics
from monitor.prices import PriceTable
from monitor.records import SegmentStatus
from monitor.segments import SegmentMonitor
from monitor.topics import TopicModel

log = logging.getLogger(__name__)
T = TypeVar("T")
ReportWindows = tuple[list[dict[str, float | str]], list[dict[str, float | str]]]
Snapshot = dict[str, tuple[bytes | None, bytes | None]]
"""Pickled monitor and topic model (``None``: none live) by segment, from :meth:`StreamStep.snapshot`."""
SETTLED_BEFORE_KEPT = datetime.min.replace(tzinfo=UTC)
"""The settling time of a segment checkpointed settled before that time was kept: settled ever since."""


class StreamSettings(Protocol):
    """What the step reads from the service's settings (``driftloop.settings.Settings`` has it)."""

    detector_service_ert: float
    detector_warmup: int
    reference_events: int
    resolve_events: int
    topic_reference_size: int
    topic_count: int
    job_seed: int
    embeddings: bool
    embedding_model: Model
    embedding_sample_rate: float
    max_live_segments: int
    segment_max_routes: int
    segment_max_tenants: int


class CheckpointStore(Protocol):
    """Pickled states by segment key (UTF-8): a Faust table in the worker, a dict elsewhere."""

    def get(self, key: bytes, /) -> bytes | None: ...

    def __setitem__(self, key: bytes, value: bytes, /) -> None: ...

    def values(self) -> Iterable[bytes]: ...


@dataclass
class Outcomes:
    """What observing a batch reached: incidents and resolutions in the order reached, each incident's report
    windows as they were when it opened, and the segments the batch touched."""

    reached: list[Outcome]
    windows: dict[str, ReportWindows]
    segments: list[str]


def topic_columns(model: TopicModel, vectors: np.ndarray) -> dict[str, np.ndarray]:
    """The topic features of many embeddings at once, as columns: what ``semantic_features(model.assign(v), …)``
    gives event by event (NaN where it gives none: while the model is fitted on the first of them), with the
    nearest reference topics of all ``vectors`` taken in one :meth:`~monitor.topics.TopicModel.nearest`. The
    emerging topics are not tracked (no feature depends on them).

    >>> rng = np.random.default_rng(0)
    >>> vectors = rng.standard_normal((30, 8))
    >>> vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    >>> columns = topic_columns(TopicModel(reference_size=10, topics=2), vectors)
    >>> sorted(columns), int(np.isnan(columns["topic_novelty"]).sum())
    (['topic_novelty', 'topic_share_0', 'topic_share_1'], 10)
    """
    fitting = 0
    while not model.fitted and fitting < len(vectors):
        model.assign(vectors[fitting])
        fitting += 1
    if not model.fitted:
        return {}
    nearest, distance = model.nearest(vectors)
    novel = distance > model.radius
    columns = {"topic_novelty": novel.astype(np.float64)}
    for j in range(min(model.topics, TOPIC_FEATURES)):
        columns[f"topic_share_{j}"] = (~novel & (nearest == j)).astype(np.float64)
    for values in columns.values():
        values[:fitting] = np.nan
    return columns


class StreamStep:
    """The segments' live monitors and topic models, restored from and checkpointed into ``monitor_checkpoints``
    and ``topic_checkpoints``; counts on ``metrics``; events cost what ``prices`` says. See the module docstring."""

    def __init__(
        self,
        settings: StreamSettings,
        monitor_checkpoints: CheckpointStore,
        topic_checkpoints: CheckpointStore,
        metrics: MonitorMetrics | None = None,
        prices: PriceTable = DEFAULT_TABLE,
    ) -> None:
        self.settings, self.prices = settings, prices
        self.monitor_checkpoints, self.topic_checkpoints = monitor_checkpoints, topic_checkpoints
        self.metrics = metrics or MonitorMetrics.default()
        self.monitors: OrderedDict[str, SegmentMonitor] = OrderedDict()
        """The live segments, least recently used first."""
        self.topic_models: OrderedDict[str, TopicModel] = OrderedDict()
        self.cardinality = Cardinality()
        self.established_at: datetime | None = None
        """When the service was established: the earliest time a segment here settled (:attr:`SegmentMonitor.settled_at
        <monitor.segments.SegmentMonitor.settled_at>`); a segment whose first event is later is novel."""
        self._looked_in_checkpoints = False
        self.unsaved: set[str] = set()
        """Segments changed since their last checkpoint."""

    def segment(self, segment: str, first_seen: datetime | None = None) -> SegmentMonitor:
        """The segment's monitor: live, else from its checkpoint, else a new one, ``novel`` when its first event (at
        ``first_seen``, else now) came after the service was established (:attr:`established_at`)."""
        settings = self.settings
        state = _restored(
            self.monitors,
            self.monitor_checkpoints,
            segment,
            lambda: SegmentMonitor(
                segment,
                settings.detector_service_ert,
                settings.detector_warmup,
                settings.reference_events,
                settings.resolve_events,
                novel=self._established_before(first_seen or datetime.now(UTC)),
            ),
        )
        self._settle(state)
        return state

    @property
    def established(self) -> bool:
        """Whether some segment has settled."""
        return self.established_at is not None

    def _established_before(self, time: datetime) -> bool:
        """Whether the service was established before ``time``; the first time it is asked while it is not, from the
        checkpoints too (a restarted worker's settled segments are there, not live): one look at each until a
        settled one, once per step."""
        if self.established_at is None and not self._looked_in_checkpoints:
            self._looked_in_checkpoints = True
            self.established_at = next(filter(None, map(_settled_at, self.monitor_checkpoints.values())), None)
        return self.established_at is not None and self.established_at < time

    def _settle(self, state: SegmentMonitor) -> None:
        """Take ``state``'s settling into :attr:`established_at` (a state checkpointed settled before its time was
        kept counts as settled ever since)."""
        if state.detectors:
            settled = state.settled_at or SETTLED_BEFORE_KEPT
            self.established_at = min(self.established_at or settled, settled)

    def holds(self, segment: str) -> bool:
        """Whether the segment has state here: live or a checkpoint."""
        return segment in self.monitors or self.monitor_checkpoints.get(segment.encode()) is not None

    def fold(self, event: TrafficEvent) -> TrafficEvent:
        """The event as it is monitored: its route and tenant folded into :data:`~monitor.cardinality.OVERFLOW`
        past their limits per model (``segment_max_routes``, ``segment_max_tenants``; 0: no limit), counted per
        dimension."""
        folded = self.cardinality.fold(
            event.model,
            {"route": event.route, "tenant": event.tenant},
            {"route": self.settings.segment_max_routes or None, "tenant": self.settings.segment_max_tenants or None},
            exists=lambda: self.holds(event.segment),
        )
        for dimension in folded:
            self.metrics.folded.labels(dimension).inc()
        return event.model_copy(update=folded) if folded else event

    def pin_reference(self, segment: str, rows: list[Measurements], prompts: list[str] | None = None) -> None:
        """Pin the segment's reference to ``rows`` (:meth:`SegmentMonitor.pin_reference`); it is settled then."""
        state = self.segment(segment)
        state.pin_reference(rows, prompts)
        self._settle(state)

    def topics(self, segment: str) -> TopicModel:
        """The segment's topic model: live, else from its checkpoint, else a new one."""
        return _restored(self.topic_models, self.topic_checkpoints, segment, self._new_topics)

    def _new_topics(self) -> TopicModel:
        settings = self.settings
        return TopicModel(settings.topic_reference_size, settings.topic_count, seed=settings.job_seed)

    def admit(
        self, event: TrafficEvent, partition: int, offset: int, highwater: int | None = None, log: str | None = None
    ) -> bool:
        """Whether the event at ``offset`` of ``partition`` is new to its segment's state, and if so take its
        position. One already in the state (checkpointed after the consumer's last commit, then the worker died,
        so it is redelivered) is not: it is counted once, not twice. Unless the log restarted (a broker that lost
        its data, a recreated topic): then the segment's positions are reset, logged and counted, and the event is
        new. A restart is known by the log's id (``log``, the topic's id) differing from the one the positions
        were taken in, or, where the event's log id is unknown, by the partition holding fewer events
        (``highwater``, its next offset) than the position recorded. Not where it is known: the embedded tansu
        reports a partition's end as its last batch's first offset + 1, behind offsets already read, and a reset on
        it counted redelivered events again (1,229 of 8,000 in a run of the null-keys fault scenario).

        >>> from types import SimpleNamespace
        >>> from prometheus_client import CollectorRegistry
        >>> settings = SimpleNamespace(detector_service_ert=1e6, detector_warmup=50, reference_events=800,
        ...                            resolve_events=500, segment_max_routes=0, segment_max_tenants=0)
        >>> step = StreamStep(settings, {}, {}, MonitorMetrics(CollectorRegistry()))
        >>> event = TrafficEvent(id="e1", model="m", prompt="hello")
        >>> step.admit(event, 0, offset=500, highwater=501), step.admit(event, 0, offset=400, highwater=900)
        (True, False)
        >>> step.admit(event, 0, offset=3, highwater=40)  # the log holds 40 events: it is not the one seen
        True
        >>> step.admit(event, 0, offset=4, log="a"), step.admit(event, 0, offset=4, log="a")  # the id is taken up
        (True, False)
        >>> step.admit(event, 0, offset=3, highwater=3, log="a")  # the same log: its high-water mark read behind
        False
        >>> step.admit(event, 0, offset=2, highwater=900, log="b")  # another log, however long
        True
        >>> step.metrics.registry.get_sample_value("driftloop_stream_resets_total")
        2.0
        """
        segment = self.segment(event.segment, event.timestamp)
        if log is not None and segment.log != log:
            if segment.log is not None and segment.positions:
                self._reset(segment, f"its positions were taken in log {segment.log}, this event is in log {log}")
            segment.log = log
        recorded = segment.positions.get(partition, -1)
        if offset <= recorded:
            if log is not None or highwater is None or highwater > recorded:  # an id known is the log's word
                return False
            self._reset(segment, f"partition {partition} holds {highwater} events, its state saw offset {recorded}")
        segment.positions[partition] = offset
        self.unsaved.add(event.segment)
        return True

    def _reset(self, segment: SegmentMonitor, why: str) -> None:
        log.warning("segment %s: the log restarted (%s): its positions are reset", segment.segment, why)
        self.metrics.stream_resets.inc()
        segment.positions.clear()

    def features(self, events: list[TrafficEvent]) -> list[Measurements]:
        """Each event's features (its cost at :attr:`prices`) and language (CPU-heavy, and touches no state: fit for a
        thread)."""
        return measure_events(events, self.prices)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Sentence embeddings of ``texts`` by the encoder of the settings (``embedding_model``)."""
        return embed(texts, self.settings.embedding_model)

    def sample(self, events: list[TrafficEvent]) -> list[int]:
        """Positions of the events in the embedding sample (none when embeddings are off)."""
        rate = self.settings.embedding_sample_rate
        return [i for i, event in enumerate(events) if self.settings.embeddings and sampled(event.id, rate)]

    def semantics(self, events: list[TrafficEvent], vectors: np.ndarray) -> list[Measurements]:
        """The embedding measurements of sampled events from their prompt embeddings (``vectors``, one row per
        event, of the prompt's first :data:`~core.embeddings.EMBED_CHARS`): injection similarity, the learned
        injection score, the topic from the segment's model (which learns from each, in order) and the embedding
        itself. A segment whose state holds another encoder's embeddings (``embedding_model`` changed) is rebased
        and its topics start again."""
        model = self.settings.embedding_model
        for segment in {event.segment for event in events}:
            if self.segment(segment).embedded_by(model):
                log.warning("segment %s: embeddings now by %s, collecting a new reference", segment, model)
                self.topic_models[segment] = self._new_topics()
                self.unsaved.add(segment)
        similarities = injection_similarity(vectors, model)
        learned = injection_learned(vectors, [event.prompt_text for event in events], model)
        return [
            measurements(
                semantic_features(self.topics(event.segment).assign(vector), float(similarity), float(score)),
                vector=vector,
            )
            for event, vector, similarity, score in zip(events, vectors, similarities, learned, strict=True)
        ]

    def observe(self, events: list[TrafficEvent], inputs: list[Measurements]) -> Outcomes:
        """Feed each event's measurements to its segment's monitor, a segment at a time (a reference that
        completes is calibrated here: seconds of CPU)."""
        batches: dict[str, tuple[list[TrafficEvent], list[Measurements]]] = {}
        for event, measured in zip(events, inputs, strict=True):
            batch = batches.setdefault(event.segment, ([], []))
            batch[0].append(event)
            batch[1].append(measured)
        reached: list[Outcome] = []
        windows: dict[str, ReportWindows] = {}
        for segment, (segment_events, segment_inputs) in batches.items():
            state = self.segment(segment)
            for outcome in state.observe_many(segment_events, segment_inputs):
                if isinstance(outcome, DriftIncident):
                    windows[outcome.id] = state.report_windows(outcome.onset_event)
                reached.append(outcome)
            self._settle(state)
        self.unsaved.update(batches)
        return Outcomes(reached, windows, list(batches))

    def changed(self) -> set[str]:
        """The live segments changed since their last checkpoint."""
        return self.unsaved.intersection(self.monitors)

    def checkpoint(self, snapshot: Snapshot | None = None) -> list[str]:
        """Write ``snapshot`` (of :meth:`snapshot`; by default one of the :meth:`changed` segments) to the stores:
        one pickle per segment, however many events it took in. Pickling may run in a thread (a reference's
        first pickle redacts its prompts: about a second); the writes, to Faust tables, on the event loop. Returns
        the segments written."""
        if snapshot is None:
            snapshot = self.snapshot(self.changed())
        for segment, (monitor, topics) in snapshot.items():
            if monitor is not None:
                self.monitor_checkpoints[segment.encode()] = monitor
            if topics is not None:
                self.topic_checkpoints[segment.encode()] = topics
        self.unsaved.difference_update(snapshot)
        return sorted(snapshot)

    def evict(self) -> list[str]:
        """Drop from memory the least recently used segments beyond ``max_live_segments`` (checkpointed first when
        changed since their last checkpoint; restored on their next event); count them. Returns them."""
        evicted = list(islice(self.monitors, max(0, len(self.monitors) - self.settings.max_live_segments)))
        if self.unsaved.intersection(evicted):
            self.checkpoint()
        for segment in evicted:
            del self.monitors[segment]
            self.topic_models.pop(segment, None)
        self.metrics.segments_evicted.inc(len(evicted))
        self.metrics.segments_live.set(len(self.monitors))
        return evicted

    def forget(self) -> None:
        """Drop every live segment: each is restored from its checkpoint store on its next event. Every change is
        checkpointed by the end of its batch, so nothing is lost; what was live may be stale after a rebalance."""
        self.monitors.clear()
        self.topic_models.clear()
        self.unsaved.clear()
        self.metrics.segments_live.set(0)

    def snapshot(self, segments: Iterable[str]) -> Snapshot:
        """The live state of ``segments`` (pickled), for :meth:`restore` when what changed it failed half-way."""
        return {
            segment: (
                pickle.dumps(self.monitors[segment]) if segment in self.monitors else None,
                pickle.dumps(self.topic_models[segment]) if segment in self.topic_models else None,
            )
            for segment in segments
        }

    def restore(self, snapshot: Snapshot) -> None:
        """Put the segments of ``snapshot`` back as they were when it was taken.

        >>> from types import SimpleNamespace
        >>> settings = SimpleNamespace(detector_service_ert=1e6, detector_warmup=50, reference_events=800,
        ...                            resolve_events=500)
        >>> step = StreamStep(settings, {}, {})
        >>> event = TrafficEvent(id="e1", model="m", prompt="hello")
        >>> saved = step.snapshot([event.segment])
        >>> _ = step.observe([event], step.features([event]))
        >>> step.restore(saved)
        >>> event.segment in step.monitors
        False
        """
        for segment, (monitor, topics) in snapshot.items():
            _put(self.monitors, segment, monitor)
            _put(self.topic_models, segment, topics)

    def status(self, segment: str) -> SegmentStatus:
        """The segment's state, event count and open incident, as the API shows them."""
        state = self.segment(segment)
        return SegmentStatus(segment=segment, state=state.state, events=state.events, open_incident=state.open_incident)


def _settled_at(checkpoint: bytes | None) -> datetime | None:
    """When a checkpointed segment settled (:data:`SETTLED_BEFORE_KEPT` if before that was kept); None if it had not,
    or if the checkpoint is unreadable: that is its own segment's fault (its events are dead-lettered when they
    come), not the others'."""
    try:
        state = pickle.loads(checkpoint) if checkpoint else None
    except Exception:  # noqa: BLE001 - unpickling raises many kinds (UnpicklingError, EOFError, AttributeError, ...)
        return None
    return (state.settled_at or SETTLED_BEFORE_KEPT) if state is not None and state.detectors else None


def _restored(live: OrderedDict[str, T], store: CheckpointStore, segment: str, new: Callable[[], T]) -> T:
    """A segment's live state, now the most recently used: in memory, else from its last checkpoint in ``store``,
    else ``new()``."""
    if segment in live:
        live.move_to_end(segment)
    else:
        stored = store.get(segment.encode())
        live[segment] = pickle.loads(stored) if stored else new()
    return live[segment]


def _put(live: dict[str, T], segment: str, state: bytes | None) -> None:
    """``segment``'s live state unpickled from ``state``, or none when ``state`` is ``None``."""
    if state is None:
        live.pop(segment, None)
    else:
        live[segment] = pickle.loads(state)
