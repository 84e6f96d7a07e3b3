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

import pickle
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from core.risk import injection_similarity
from monitor.events import TrafficEvent
from monitor.features import TOPIC_FEATURES, extract_features, semantic_features
from monitor.incidents import DriftIncident, Resolution
from monitor.language import detect_languages
from monitor.records import SegmentStatus
from monitor.segments import Measurements, SegmentMonitor, measurements
from monitor.topics import TopicModel

EMBED_CHARS = 1000
"""Characters of a prompt that are embedded (the model reads 256 word pieces, about this many characters)."""
T = TypeVar("T")
ReportWindows = tuple[list[dict[str, float | str]], list[dict[str, float | str]]]


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
    embedding_sample_rate: float


class CheckpointStore(Protocol):
    """Pickled states by segment key (UTF-8): a Faust table in the worker, a dict elsewhere."""

    def get(self, key: bytes, /) -> bytes | None: ...

    def __setitem__(self, key: bytes, value: bytes, /) -> None: ...


@dataclass
class Outcomes:
    """What observing a batch reached: incidents and resolutions in the order reached, each incident's report
    windows as they were when it opened, and the segments the batch touched."""

    reached: list[DriftIncident | Resolution]
    windows: dict[str, ReportWindows]
    segments: list[str]


def sampled(event_id: str, rate: float) -> bool:
    """Whether an event is in the embedding sample: a hash of its id, so a redelivered event is chosen again.

    >>> sampled("evt-1", 1.0), sampled("evt-1", 1e-9)
    (True, False)
    """
    return zlib.crc32(event_id.encode()) < rate * 2**32


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
    and ``topic_checkpoints``; see the module docstring."""

    def __init__(
        self, settings: StreamSettings, monitor_checkpoints: CheckpointStore, topic_checkpoints: CheckpointStore
    ) -> None:
        self.settings = settings
        self.monitor_checkpoints, self.topic_checkpoints = monitor_checkpoints, topic_checkpoints
        self.monitors: dict[str, SegmentMonitor] = {}
        self.topic_models: dict[str, TopicModel] = {}
        self.unsaved: set[str] = set()
        """Segments changed since their last checkpoint."""

    def segment(self, segment: str) -> SegmentMonitor:
        """The segment's monitor: live, else from its checkpoint, else a new one (``novel`` when another segment
        has settled already: it appeared after the service was established)."""
        settings = self.settings
        return _restored(
            self.monitors,
            self.monitor_checkpoints,
            segment,
            lambda: SegmentMonitor(
                segment,
                settings.detector_service_ert,
                settings.detector_warmup,
                settings.reference_events,
                settings.resolve_events,
                novel=any(known.detectors for known in self.monitors.values()),
            ),
        )

    def topics(self, segment: str) -> TopicModel:
        """The segment's topic model: live, else from its checkpoint, else a new one."""
        settings = self.settings
        return _restored(
            self.topic_models,
            self.topic_checkpoints,
            segment,
            lambda: TopicModel(settings.topic_reference_size, settings.topic_count, seed=settings.job_seed),
        )

    def admit(self, event: TrafficEvent, partition: int, offset: int) -> bool:
        """Whether the event at ``offset`` of ``partition`` is new to its segment's state, and if so take its
        position. One already in the state (checkpointed after the consumer's last commit, then the worker died,
        so it is redelivered) is not: it is counted once, not twice."""
        positions = self.segment(event.segment).positions
        if offset <= positions.get(partition, -1):
            return False
        positions[partition] = offset
        self.unsaved.add(event.segment)
        return True

    @staticmethod
    def features(events: list[TrafficEvent]) -> list[Measurements]:
        """Each event's features and language (CPU-heavy, and touches no state: fit for a thread)."""
        languages = detect_languages([event.prompt_text for event in events])
        return [
            measurements(extract_features(event, language), language)
            for event, language in zip(events, languages, strict=True)
        ]

    def sample(self, events: list[TrafficEvent]) -> list[int]:
        """Positions of the events in the embedding sample (none when embeddings are off)."""
        rate = self.settings.embedding_sample_rate
        return [i for i, event in enumerate(events) if self.settings.embeddings and sampled(event.id, rate)]

    def semantics(self, events: list[TrafficEvent], vectors: np.ndarray) -> list[Measurements]:
        """The embedding measurements of sampled events from their prompt embeddings (``vectors``, one row per
        event, of the prompt's first :data:`EMBED_CHARS`): injection similarity, the topic from the segment's
        model (which learns from each, in order) and the embedding itself."""
        similarities = injection_similarity(vectors)
        return [
            measurements(semantic_features(self.topics(event.segment).assign(vector), float(similarity)), vector=vector)
            for event, vector, similarity in zip(events, vectors, similarities, strict=True)
        ]

    def observe(self, events: list[TrafficEvent], inputs: list[Measurements]) -> Outcomes:
        """Feed each event's measurements to its segment's monitor, a segment at a time (a reference that
        completes is calibrated here: seconds of CPU)."""
        batches: dict[str, tuple[list[TrafficEvent], list[Measurements]]] = {}
        for event, measured in zip(events, inputs, strict=True):
            batch = batches.setdefault(event.segment, ([], []))
            batch[0].append(event)
            batch[1].append(measured)
        reached: list[DriftIncident | Resolution] = []
        windows: dict[str, ReportWindows] = {}
        for segment, (segment_events, segment_inputs) in batches.items():
            state = self.segment(segment)
            for outcome in state.observe_many(segment_events, segment_inputs):
                if isinstance(outcome, DriftIncident):
                    windows[outcome.id] = state.report_windows(outcome.onset_event)
                reached.append(outcome)
        self.unsaved.update(batches)
        return Outcomes(reached, windows, list(batches))

    def checkpoint(self) -> list[str]:
        """Write the monitor and topic model (when it has one) of every segment changed since its last checkpoint
        to their stores (one pickle each, however many events it took in); the segments written."""
        written, self.unsaved = sorted(self.unsaved), set()
        for segment in written:
            self.monitor_checkpoints[segment.encode()] = pickle.dumps(self.monitors[segment])
            if segment in self.topic_models:
                self.topic_checkpoints[segment.encode()] = pickle.dumps(self.topic_models[segment])
        return written

    def status(self, segment: str) -> SegmentStatus:
        """The segment's state, event count and open incident, as the API shows them."""
        state = self.monitors[segment]
        return SegmentStatus(segment=segment, state=state.state, events=state.events, open_incident=state.open_incident)


def _restored(live: dict[str, T], store: CheckpointStore, segment: str, new: Callable[[], T]) -> T:
    """A segment's live state: in memory, else from its last checkpoint in ``store``, else ``new()``."""
    if segment not in live:
        stored = store.get(segment.encode())
        live[segment] = pickle.loads(stored) if stored else new()
    return live[segment]
