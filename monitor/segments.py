"""Per-segment monitoring: the reference, one calibrated detector per feature, the incident lifecycle.

A segment (model/route/tenant) goes through:

1. **warm-up** (``warmup`` events ignored), then **reference**: the next ``reference_events`` events
   become the reference and every feature's detector is calibrated on it (:func:`monitor.detectors.calibrated`)
   so that all of the segment's detectors together raise a false alarm once per ``service_ert`` events
   (:func:`monitor.calibration.detector_ert`; the optional features' share is reserved whether they are
   measured yet or not). An optional feature measured in too few reference events (embeddings are sampled,
   a segment's topics are fitted after its first embedded events) keeps collecting its own reference from
   the events after, while no incident is open, and gets its detector once it has :data:`MIN_REFERENCE`
   values. A segment that appears once the service is established (``novel``) opens a ``new-segment``
   incident as soon as its reference is in; that one is for people to acknowledge and resolve, it does
   not hold the segment.
2. **quiet** → **drafting**: a detector at its warning level (ERT × :data:`WARNING_SHARE`) starts a draft
   that collects the features at warning; the draft is dropped when they all fall back.
3. **open**: a detector at its drift level opens one incident with every drafted feature, the onset
   (where the leading CUSUM left zero) and redacted evidence from the drifted window. While it is open
   the segment raises nothing new (one incident per ongoing shift).
4. **resolved**: after ``resolve_events`` consecutive events with every detector under its warning level,
   :meth:`SegmentMonitor.observe` returns a :class:`~monitor.incidents.Resolution`. A rolling reference is
   then rebuilt from the next events (:meth:`SegmentMonitor.rebase`); a pinned one
   (:meth:`SegmentMonitor.pin_reference`) stays.

The whole object is pickled into a Faust table, so a restarted worker resumes reference and detectors.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from core.redact import redact
from monitor.calibration import SEGMENT_MISS, detector_ert
from monitor.detectors import CusumDetector, Level, calibrated
from monitor.events import TrafficEvent
from monitor.features import FEATURES, Kind
from monitor.incidents import (
    SEVERITY,
    DriftIncident,
    Evidence,
    FeatureShift,
    IncidentKind,
    Resolution,
    incident_id,
    kind_of,
)
from monitor.windows import CategoryMap, FourierMap, ProfileMap, WindowDetector, calibrated_window

EVIDENCE_EXAMPLES = 32
EVIDENCE_WINDOW = 128
"""Recent events kept for evidence (cut to EVIDENCE_CHARS): bounds the pickled state (Faust message size). They
are redacted when an incident takes them (redacting every event cost more than all the features together); until
then the checkpoint holds the same text as ``llm.traffic`` and needs the same access control."""
EVIDENCE_CHARS = 1000
REPORT_REFERENCE = 200
"""Reference events (rows and prompts cut to REPORT_CHARS) kept for the incident report's reference window."""
REPORT_CHARS = 300
MOVED_Z = 5.0
"""A feature outside the draft joins an incident when its drifted-window mean is this many standard errors off
its reference mean (so a jailbreak wave that refusals page on first is still named an attack wave)."""
MIN_REFERENCE = 200
CALIBRATION_THREADS = 2
"""Detectors calibrated at once when a reference completes (the machine's cores: 2 here)."""
WINDOW_EVENTS = 200
"""Events in a windowed test's current window; its reference needs at least two windows of events."""
WINDOWED = {"prompt_embedding": FourierMap.fit, "language": CategoryMap.fit, "feature_profile": ProfileMap.fit}
"""Inputs watched by a windowed two-sample test (:mod:`monitor.windows`) → the fit of its feature map."""
OPTIONAL = frozenset(name for name, spec in FEATURES.items() if spec.optional) | {"prompt_embedding"}
PROFILE = tuple(name for name, spec in FEATURES.items() if spec.kind is not Kind.RATE and not spec.optional)
"""The numeric features whose joint profile (each one's reference deciles) a windowed test watches."""
WARNING_SHARE = 1e-3
"""The warning level's ERT as a share of the drift level's: warnings are cheap (a draft), drifts page."""


Measurements = dict[str, float | str | np.ndarray]
"""An event's inputs to its segment's detectors: feature → value, plus the windowed tests' inputs."""
Detector = CusumDetector | WindowDetector


def measurements(
    features: dict[str, float], language: str | None = None, vector: np.ndarray | None = None
) -> Measurements:
    """An event's inputs: its features, their :data:`PROFILE` as one vector (a windowed test of their shapes), its
    prompt's ``language`` (a categorical test) and its prompt embedding (an MMD test), the embedding quantised to
    int8 (a reference of 800 of them is 300 KB of checkpoint; the test's kernel bandwidth is fitted in that scale).

    >>> sorted(measurements({"refusal": 0.0}, "en", np.full(4, 0.5, dtype=np.float32)).items(), key=str)[0]
    ('language', 'en')
    >>> measurements({}, vector=np.full(2, 0.5))["prompt_embedding"].tolist()
    [64, 64]
    """
    inputs: Measurements = dict(features)
    if all(name in features for name in PROFILE):
        inputs["feature_profile"] = np.array([features[name] for name in PROFILE], dtype=np.float32)
    if language is not None:
        inputs["language"] = language
    if vector is not None:
        inputs["prompt_embedding"] = quantized(vector)
    return inputs


def quantized(vectors: np.ndarray) -> np.ndarray:
    """Unit-norm embeddings (one or many) as int8: x·127, rounded."""
    return np.round(np.asarray(vectors) * 127).astype(np.int8)


@dataclass
class SegmentMonitor:
    """The monitoring state of one segment; feed it with :meth:`observe`."""

    segment: str
    service_ert: float
    warmup: int
    reference_events: int
    resolve_events: int
    novel: bool = False
    seed: int = 0
    events: int = 0
    collect_after: int = 0
    reference_rows: list[Measurements] = field(default_factory=list)
    reference_prompts: list[str] = field(default_factory=list)
    reference_vectors: int = 0
    """Prompt embeddings seen while collecting the reference; the first :func:`needed` of them are kept (the MMD
    test's reference: a larger one would not fit the checkpoint's 1 MB message)."""
    report_reference: list[dict[str, float | str]] = field(default_factory=list)
    reference: dict[str, np.ndarray] = field(default_factory=dict)
    pinned: bool = False
    detectors: dict[str, Detector] = field(default_factory=dict)
    pending: dict[str, list[float | str | np.ndarray]] = field(default_factory=dict)
    """Reference values of features without a detector yet (too few in the reference)."""
    detector_ert: float = 0.0
    detector_miss: float = SEGMENT_MISS
    incidents_opened: int = 0
    open_incident: str | None = None
    draft: set[str] = field(default_factory=set)
    quiet_run: int = 0
    positions: dict[int, int] = field(default_factory=dict)
    """Stream positions (partition → offset) of the last events in this state, kept by the worker so that a
    redelivered event (at-least-once delivery after a crash) is not counted twice."""
    recent: deque[tuple[Evidence, dict[str, float]]] = field(default_factory=lambda: deque(maxlen=EVIDENCE_WINDOW))

    def __post_init__(self) -> None:
        if self.reference_events < MIN_REFERENCE or self.resolve_events < 1 or self.warmup < 0:
            raise ValueError("need reference_events >= 200, resolve_events >= 1 and warmup >= 0")

    @property
    def state(self) -> str:
        """reference (still collecting it), quiet, drafting (a warning is collecting evidence) or open."""
        if not self.detectors:
            return "reference"
        return "open" if self.open_incident else "drafting" if self.draft else "quiet"

    def observe(self, event: TrafficEvent, inputs: Measurements) -> DriftIncident | Resolution | None:
        """Update the segment with one event's :func:`measurements` (or bare features); return the incident it
        opens or the resolution it reaches."""
        self.events += 1
        self._remember(event, inputs)
        if not self.detectors:
            return self._collect(inputs, event.prompt_text)
        levels = {
            name: detector.update(inputs[name], at=self.events)
            for name, detector in self.detectors.items()
            if name in inputs
        }
        if self.open_incident is not None:
            return self._track(levels)
        self._collect_pending(inputs)
        self.draft = {name for name in self.draft | set(levels) if self.detectors[name].level >= Level.WARNING}
        if any(level is Level.DRIFT for level in levels.values()):
            return self._open()
        return None

    def observe_many(
        self, events: list[TrafficEvent], inputs: list[Measurements]
    ) -> Iterator[DriftIncident | Resolution]:
        """:meth:`observe` over a batch, with the same outcomes, yielded as they are reached (so the state is read
        as it was then, e.g. :meth:`report_windows`). Stretches where nothing happens (no detector reaches its drift
        level, no pending reference completes) run vectorised, each detector fed its values at once: it is what
        lets one worker keep up with its partition."""
        at = 0
        while at < len(events):
            if self.detectors and self.open_incident is None:
                at += self._quiet_stretch(events[at:], inputs[at:])
            if at < len(events):
                outcome = self.observe(events[at], inputs[at])
                at += 1
                if outcome is not None:
                    yield outcome

    def _quiet_stretch(self, events: list[TrafficEvent], inputs: list[Measurements]) -> int:
        """Feed the events before the first one at which a detector drifts or a pending reference completes (that
        one is left to :meth:`observe`); how many were fed."""
        seen: dict[str, list[int]] = {}
        for position, measured in enumerate(inputs):
            for name in measured:
                seen.setdefault(name, []).append(position)
        stop = len(events)
        for name, detector in self.detectors.items():
            if name in seen:
                values = column(name, [inputs[i][name] for i in seen[name]])
                drifted = np.flatnonzero(detector.trajectory(values) >= detector.threshold)
                stop = min(stop, seen[name][drifted[0]]) if drifted.size else stop
        collecting = [name for name in seen if self._collects(name)]
        for name in collecting:
            missing = needed(name) - len(self.pending.get(name, []))
            stop = min(stop, seen[name][missing - 1]) if len(seen[name]) >= missing else stop
        for name, positions in seen.items():
            fed = positions[: int(np.searchsorted(positions, stop))]
            if fed and name in self.detectors:
                self.detectors[name].advance(
                    column(name, [inputs[i][name] for i in fed]), at=self.events + 1 + np.array(fed)
                )
            elif fed and name in collecting:
                self.pending.setdefault(name, []).extend(inputs[i][name] for i in fed)
        for event, measured in zip(
            events[max(0, stop - EVIDENCE_WINDOW) : stop], inputs[max(0, stop - EVIDENCE_WINDOW) : stop], strict=True
        ):
            self._remember(event, measured)
        self.events += stop
        self.draft = {name for name, detector in self.detectors.items() if detector.level >= Level.WARNING}
        return stop

    def _remember(self, event: TrafficEvent, inputs: Measurements) -> None:
        """Keep the event (cut) and its features among the recent ones, for an incident's evidence."""
        response = event.response[:EVIDENCE_CHARS] if event.response else None
        features = {name: value for name, value in inputs.items() if name not in WINDOWED}
        self.recent.append((Evidence(prompt=event.prompt_text[:EVIDENCE_CHARS], response=response), features))  # type: ignore[arg-type]

    def _collects(self, name: str) -> bool:
        """Whether values of input ``name`` go to its pending reference: it has no detector yet (a language
        reference of one language gets none, and is not collected again)."""
        return name not in self.detectors and (name != "language" or name in self.pending)

    def pin_reference(self, rows: list[Measurements], prompts: list[str] | None = None) -> None:
        """Replace the reference with ``rows`` (:func:`measurements` of events, e.g. of a time range chosen through
        the API; ``prompts`` their prompts, for reports) and recalibrate; it stays until pinned again (no rolling
        refresh)."""
        self.reference_prompts = [prompt[:REPORT_CHARS] for prompt in (prompts or [])][-REPORT_REFERENCE:]
        self._calibrate(rows)
        self.pinned = True

    def report_windows(self, onset: int) -> tuple[list[dict[str, float | str]], list[dict[str, float | str]]]:
        """Rows (features present in every row, plus ``prompt``) of the reference and of the window since
        ``onset``, for :func:`monitor.reports.build_report`."""
        current = [{**row, "prompt": e.prompt} for e, row in list(self.recent)[-(self.events - onset + 1) :]]
        rows = self.report_reference + current
        common = set.intersection(*(set(row) for row in rows)) if rows else set()
        return [{k: row[k] for k in common} for row in self.report_reference], [
            {k: r[k] for k in common} for r in current
        ]

    def rebase(self) -> None:
        """Drop the reference and detectors; the events after a new warm-up become the reference."""
        self.detectors, self.reference, self.reference_rows, self.draft = {}, {}, [], set()
        self.reference_prompts, self.report_reference = [], []
        self.pending = {}
        self.collect_after, self.pinned = self.events + self.warmup, False

    def _collect(self, inputs: Measurements, prompt: str) -> DriftIncident | None:
        if self.events <= max(self.warmup, self.collect_after):
            return None
        if "prompt_embedding" in inputs:
            if self.reference_vectors >= needed("prompt_embedding"):  # enough: the checkpoint stays under 1 MB
                inputs = {name: value for name, value in inputs.items() if name != "prompt_embedding"}
            self.reference_vectors += 1
        self.reference_rows.append(inputs)
        self.reference_prompts = [*self.reference_prompts[-(REPORT_REFERENCE - 1) :], prompt[:REPORT_CHARS]]
        if len(self.reference_rows) < self.reference_events:
            return None
        self._calibrate(self.reference_rows)
        if self.novel:
            self.novel = False
            first = self.events - self.reference_events + 1
            return self._incident(IncidentKind.NEW_SEGMENT, [], first, list(self.recent), hold=False)
        return None

    def _calibrate(self, rows: list[Measurements]) -> None:
        """Fit and calibrate a detector for every input measured in enough rows (:func:`needed`; optional inputs
        are absent from some events; those events do not count for them, and an input with fewer rows is left
        pending). The ERT and the guard's miss share are split across the measured inputs and every optional one."""
        values: dict[str, list] = {}
        for row in rows:
            for name, value in row.items():
                values.setdefault(name, []).append(value)
        if "prompt_embedding" in values:  # the first ones, pinned or rolling alike
            values["prompt_embedding"] = values["prompt_embedding"][: needed("prompt_embedding")]
        ready = {name for name, v in values.items() if len(v) >= needed(name)}
        if not ready:
            raise ValueError(f"a reference needs a feature measured in at least {MIN_REFERENCE} rows")
        budget = len(values.keys() | OPTIONAL)
        self.detector_ert, self.detector_miss = detector_ert(self.service_ert, budget), SEGMENT_MISS / budget
        self.reference, self.detectors = {}, {}
        self.pending = {name: v for name, v in values.items() if name not in ready}
        with ThreadPoolExecutor(CALIBRATION_THREADS) as pool:  # numpy releases the GIL in the simulations
            fitted = pool.map(lambda name: (name, self._fit(name, values[name])), sorted(ready))
            self._install(dict(fitted), values)
        kept = rows[-len(self.reference_prompts) :] if self.reference_prompts else []
        self.report_reference = [
            {**{name: value for name, value in row.items() if name not in WINDOWED}, "prompt": prompt[:REPORT_CHARS]}  # type: ignore[misc]
            for row, prompt in zip(kept, self.reference_prompts[-len(kept) :], strict=True)
        ][-REPORT_REFERENCE:]
        self.reference_rows, self.reference_prompts, self.draft, self.quiet_run = [], [], set(), 0
        self.reference_vectors = 0

    def _add_detector(self, name: str, values: list) -> None:
        self._install({name: self._fit(name, values)}, {name: values})

    def _fit(self, name: str, values: list) -> Detector | None:
        """A calibrated detector of input ``name`` on its reference ``values`` (None: nothing to watch)."""
        ert, warning_ert = self.detector_ert, self.detector_ert * WARNING_SHARE
        if name not in WINDOWED:
            return calibrated(name, np.array(values, dtype=np.float32), ert, warning_ert, self.seed, self.detector_miss)
        if name == "language" and len(set(values)) < 2:
            return None  # one language only: a new one is the rate language_non_english, watched already
        reference = column(name, values)
        return calibrated_window(name, WINDOWED[name](reference), reference, WINDOW_EVENTS, ert, warning_ert, self.seed)

    def _install(self, fitted: dict[str, Detector | None], values: dict[str, list]) -> None:
        for name, detector in fitted.items():
            if detector is not None:
                self.detectors[name] = detector
            if isinstance(detector, CusumDetector):
                self.reference[name] = np.array(values[name], dtype=np.float32)

    def _collect_pending(self, inputs: Measurements) -> None:
        """Add an event's values of inputs without a detector to their references; calibrate those complete."""
        for name, value in inputs.items():
            if not self._collects(name):
                continue
            collected = self.pending.setdefault(name, [])
            collected.append(value)
            if len(collected) >= needed(name):
                self._add_detector(name, self.pending.pop(name))

    def _track(self, levels: dict[str, Level]) -> Resolution | None:
        """While an incident is open: count events under every warning level; resolve after enough of them."""
        self.quiet_run = 0 if any(level >= Level.WARNING for level in levels.values()) else self.quiet_run + 1
        if self.quiet_run < self.resolve_events:
            return None
        resolution = Resolution(
            incident_id=self.open_incident or "", segment=self.segment, resolved_after_events=self.events
        )
        self.open_incident, self.quiet_run = None, 0
        if not self.pinned:
            self.rebase()
        return resolution

    def _open(self) -> DriftIncident:
        """The incident of the drafted features (the leading one first: furthest past its drift level), its onset
        where the leading CUSUM last left zero, and evidence: the drifted window's events most extreme in the
        direction the leading feature moved."""
        moved = sorted(self.draft, key=lambda name: -self.detectors[name].statistic / self.detectors[name].threshold)
        primary = self.detectors[moved[0]]
        onset = primary.onset
        window = list(self.recent)[-(self.events - onset + 1) :]
        upward = bool(np.mean([row.get(primary.feature, 0.0) for _, row in window]) >= primary.reference_mean)
        window.sort(key=lambda item: item[1].get(primary.feature, 0.0), reverse=upward)
        moved += self._also_moved(moved, window)
        shifts = [self._shift(self.detectors[name], window) for name in moved]
        return self._incident(kind_of(moved), shifts, onset, window)

    def _also_moved(self, drafted: list[str], window: list[tuple[Evidence, dict[str, float]]]) -> list[str]:
        """Features outside the draft whose mean over the drifted window is :data:`MOVED_Z` standard errors off
        the reference mean, furthest first."""
        found: dict[str, float] = {}
        for name, reference in self.reference.items():
            current = [row[name] for _, row in window if name in row]
            spread = float(reference.std())
            if name in drafted or len(current) < 2 or spread == 0:
                continue
            z = abs(float(np.mean(current)) - float(reference.mean())) / (spread / np.sqrt(len(current)))
            if z >= MOVED_Z:
                found[name] = z
        return sorted(found, key=lambda name: -found[name])

    def _shift(self, detector: Detector, window: list[tuple[Evidence, dict[str, float]]]) -> FeatureShift:
        """The feature's means (a windowed test's: its statistic's null median and its value now)."""
        current = [row[detector.feature] for _, row in window if detector.feature in row]
        if isinstance(detector, WindowDetector):
            current = [detector.statistic]
        return FeatureShift(
            feature=detector.feature,
            reference_mean=detector.reference_mean,
            current_mean=float(np.mean(current)) if current else float("nan"),
            statistic=detector.statistic,
            threshold=detector.threshold,
            detector=detector.kind,
            onset_event=detector.onset,
        )

    def _incident(
        self,
        kind: IncidentKind,
        shifts: list[FeatureShift],
        onset: int,
        window: list[tuple[Evidence, dict]],
        hold: bool = True,
    ) -> DriftIncident:
        """A new incident; ``hold``: the segment tracks it until it resolves and raises nothing else meanwhile."""
        incident = DriftIncident(
            id=incident_id(self.segment, self.incidents_opened),
            kind=kind,
            severity=SEVERITY[kind],
            segment=self.segment,
            features=shifts,
            detected_after_events=self.events,
            onset_event=onset,
            evidence=[
                Evidence(prompt=redact(e.prompt), response=redact(e.response) if e.response else None)
                for e, _ in window[:EVIDENCE_EXAMPLES]
            ],
        )
        self.incidents_opened += 1
        if hold:
            self.open_incident, self.draft, self.quiet_run = incident.id, set(), 0
        return incident


def column(name: str, values: list) -> np.ndarray | list:
    """Values of input ``name`` as its detector takes them at once: a list of labels, or an array of numbers or
    vectors."""
    return values if name == "language" else np.stack(values) if name in WINDOWED else np.array(values)


def needed(name: str) -> int:
    """Reference values an input needs before its detector is calibrated: two windows for a windowed test.

    >>> needed("latency_ms"), needed("prompt_embedding")
    (200, 400)
    """
    return 2 * WINDOW_EVENTS if name in WINDOWED else MIN_REFERENCE
