"""Per-segment monitoring: the reference, one calibrated detector per feature, the incident lifecycle.

A segment (model/route/tenant) goes through:

1. **warm-up** (``warmup`` events ignored), then **reference**: the next ``reference_events`` events
   become the reference and every input's detector is calibrated on it (by its calibrator in
   :data:`monitor.inputs.INPUTS`) so that all of the segment's detectors together raise a false alarm once
   per ``service_ert`` events (:func:`monitor.calibration.detector_ert`; the optional features' share is
   reserved whether they are measured yet or not). An optional feature measured in too few reference events
   (embeddings are sampled, a segment's topics are fitted after its first embedded events) keeps collecting
   its own reference from the events after, while no incident is open, and gets its detector once it has
   :data:`MIN_REFERENCE` values. A segment that appears once the service is established (``novel``) opens a
   ``new-segment`` incident as soon as its reference is in; that one is for people to acknowledge and
   resolve, it does not hold the segment.
2. **quiet** → **drafting**: a detector at its warning level (ERT ×
   :data:`~monitor.detector_set.WARNING_SHARE`) starts a draft that collects the features at warning; the
   draft is dropped when they all fall back.
3. **open**: a detector at its drift level opens one incident with every drafted feature, its causes (each
   kind of change the moved features signal), the onset (where the leading CUSUM left zero) and redacted evidence
   from the drifted window. While it is open the segment opens nothing new (one incident per ongoing shift), but a
   detector of another kind reaching its drift level adds a cause to it (:class:`~monitor.incidents.CauseAdded`).
4. **resolved**: after ``resolve_events`` consecutive events with every detector under its warning level,
   :meth:`SegmentMonitor.observe` returns a :class:`~monitor.incidents.Resolution`. A rolling reference is
   then rebuilt from the next events (:meth:`SegmentMonitor.rebase`); a pinned one
   (:meth:`SegmentMonitor.pin_reference`) stays.

A :class:`SegmentMonitor` is the facade of three parts: its reference
(:class:`~monitor.reference_collection.ReferenceCollection`), its detectors
(:class:`~monitor.detector_set.DetectorSet`) and its incidents (:class:`~monitor.incident_builder.IncidentBuilder`).
The whole object is pickled into a Faust table, so a restarted worker resumes reference and detectors. No raw text
is pickled: the recent events' text stays out (a restored segment's report window shows them as empty prompts), the
reference's prompts kept for reports are pickled redacted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from monitor.detector import Detector, Level
from monitor.detector_set import DetectorSet
from monitor.events import TrafficEvent
from monitor.features import Measurements
from monitor.incident_builder import EVIDENCE_WINDOW, IncidentBuilder
from monitor.incidents import CauseAdded, DriftIncident, IncidentKind, Resolution, feature_kind
from monitor.inputs import INPUTS, MIN_REFERENCE
from monitor.reference_collection import ReferenceCollection

WINDOWED = tuple(name for name, watched in INPUTS.items() if not watched.scalar)
"""Inputs that are not scalars, each watched by a windowed two-sample test (:mod:`monitor.windows`)."""
SEMANTIC = "injection_similarity"
"""An input of every embedded event (:meth:`SegmentMonitor.embedded_by` looks for it)."""


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
    open_incident: str | None = None
    open_causes: frozenset[IncidentKind] = frozenset()
    """The kinds of the open incident's causes: a drift of another kind (not their symptom) adds a cause."""
    quiet_run: int = 0
    """Events in a row with every detector under its warning level while an incident is open."""
    positions: dict[int, int] = field(default_factory=dict)
    """Stream positions (partition → offset) of the last events in this state, kept by the worker so that a
    redelivered event (at-least-once delivery after a crash) is not counted twice."""
    log: str | None = None
    """The log those positions are in: the traffic topic's id (None: not known; a checkpoint from before it)."""
    encoder: str | None = None
    """The sentence encoder of its embedding inputs (:meth:`embedded_by`; None: none measured yet)."""
    settled_at: datetime | None = None
    """The time of the event that first completed its reference (or when it was first pinned); None while it has
    not settled, and for a segment checkpointed settled before this was kept."""
    collection: ReferenceCollection = field(init=False)
    detector_set: DetectorSet = field(init=False)
    builder: IncidentBuilder = field(init=False)

    def __post_init__(self) -> None:
        if self.reference_events < MIN_REFERENCE or self.resolve_events < 1 or self.warmup < 0:
            raise ValueError(f"need reference_events >= {MIN_REFERENCE}, resolve_events >= 1 and warmup >= 0")
        self.collection = ReferenceCollection(self.warmup, self.reference_events)
        self.detector_set = DetectorSet(self.service_ert, self.seed)
        self.builder = IncidentBuilder(self.segment)

    @property
    def detectors(self) -> dict[str, Detector]:
        """Input name → its calibrated detector."""
        return self.detector_set.detectors

    @property
    def state(self) -> str:
        """reference (still collecting it), quiet, drafting (a warning is collecting evidence) or open."""
        if not self.detectors:
            return "reference"
        return "open" if self.open_incident else "drafting" if self.detector_set.draft else "quiet"

    def observe(self, event: TrafficEvent, inputs: Measurements) -> DriftIncident | Resolution | CauseAdded | None:
        """Update the segment with one event's :func:`~monitor.features.measurements` (or bare features); return
        the incident it opens or the resolution it reaches."""
        self.events += 1
        self.builder.remember(event, inputs)
        self.builder.count(inputs, self.events)
        if not self.detectors:
            return self._collect(inputs, event.prompt_text, event.timestamp)
        levels = self.detector_set.update(inputs, at=self.events)
        if self.open_incident is not None:
            return self._caused(levels) or self._track(levels)
        self.collection.collect_pending(inputs, self.detector_set)
        self.detector_set.redraft(levels)
        if any(level is Level.DRIFT for level in levels.values()):
            return self._hold(self.builder.drifted(self.detector_set, self.events))
        return None

    def observe_many(
        self, events: list[TrafficEvent], inputs: list[Measurements]
    ) -> Iterator[DriftIncident | Resolution | CauseAdded]:
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
        stop = self.detector_set.first_drift(seen, inputs, len(events))
        collecting = [name for name in seen if self.collection.collects(name, self.detectors)]
        stop = self.collection.first_complete(seen, collecting, stop)
        fed = {name: positions[: int(np.searchsorted(positions, stop))] for name, positions in seen.items()}
        values = {name: [inputs[i][name] for i in positions] for name, positions in fed.items()}
        self.detector_set.advance(fed, values, first=self.events + 1)
        self.collection.extend({name: fed[name] for name in collecting}, inputs)
        self.builder.count_many(fed, values, self.events + 1, stop)
        for event, measured in zip(
            events[max(0, stop - EVIDENCE_WINDOW) : stop], inputs[max(0, stop - EVIDENCE_WINDOW) : stop], strict=True
        ):
            self.builder.remember(event, measured)
        self.events += stop
        return stop

    def pin_reference(self, rows: list[Measurements], prompts: list[str] | None = None) -> None:
        """Replace the reference with ``rows`` (:func:`~monitor.features.measurements` of events, e.g. of a time range
        chosen through the API; ``prompts`` their prompts, for reports) and recalibrate; it stays until pinned again
        (no rolling refresh)."""
        self.collection.pin(rows, prompts, self.detector_set)
        self.settled_at = self.settled_at or datetime.now(UTC)
        self.quiet_run = 0

    def report_windows(self, onset: int) -> tuple[list[dict[str, float | str]], list[dict[str, float | str]]]:
        """Rows (features present in every row, plus ``prompt``) of the reference and of the window since
        ``onset``, for :func:`monitor.reports.build_report`."""
        reference = self.collection.report_rows
        current = [{**row, "prompt": e.prompt if e else ""} for e, row in self.builder.since(onset, self.events)]
        rows = reference + current
        common = set.intersection(*(set(row) for row in rows)) if rows else set()
        return [{k: row[k] for k in common} for row in reference], [{k: r[k] for k in common} for r in current]

    def embedded_by(self, encoder: str) -> bool:
        """Record that its embedding inputs now come from ``encoder``; if they came from another (the setting
        changed), rebase: the reference's embeddings, injection similarities and topics are on the other's scale.
        Whether it rebased. A state from before the encoder was recorded, with embedding inputs, had MiniLM's."""
        embedded = any(SEMANTIC in names for names in (self.detectors, self.collection.pending, *self.collection.rows))
        previous = self.encoder or ("minilm" if embedded else encoder)
        self.encoder = encoder
        if previous == encoder:
            return False
        self.rebase()
        return True

    def rebase(self) -> None:
        """Drop the reference and detectors; the events after a new warm-up become the reference."""
        self.detector_set.clear()
        self.collection.rebase(self.events)

    def _collect(self, inputs: Measurements, prompt: str, at: datetime) -> DriftIncident | None:
        """Add the event (of time ``at``) to the reference; once it is complete, calibrate the detectors (and
        announce a novel segment)."""
        if not self.collection.take(inputs, prompt, self.events):
            return None
        self.collection.calibrate(self.collection.rows, self.detector_set)
        self.settled_at = self.settled_at or at
        self.quiet_run = 0
        if self.novel:
            self.novel = False
            return self.builder.new_segment(self.events - self.reference_events + 1, self.events)
        return None

    def _hold(self, incident: DriftIncident) -> DriftIncident:
        """Track ``incident`` until it resolves; the segment opens nothing else meanwhile."""
        self.open_incident, self.detector_set.draft, self.quiet_run = incident.id, set(), 0
        self.open_causes = frozenset(cause.kind for cause in incident.causes)
        return incident

    def _caused(self, levels: dict[str, Level]) -> CauseAdded | None:
        """The cause added to the open incident when detectors of a kind it does not name, nor explain as a
        symptom (:func:`~monitor.incidents.cause_kinds`), reach their drift level."""
        drifting = [name for name, level in levels.items() if level is Level.DRIFT]
        if not drifting or all(feature_kind(name) in self.open_causes for name in drifting):
            return None
        cause = self.builder.added(self.detector_set, drifting, self.open_causes, self.events)
        if cause is None:
            return None
        self.open_causes |= {cause.kind}
        return CauseAdded(incident_id=self.open_incident or "", segment=self.segment, cause=cause)

    def _track(self, levels: dict[str, Level]) -> Resolution | None:
        """While an incident is open: count events under every warning level; resolve after enough of them."""
        self.quiet_run = 0 if any(level >= Level.WARNING for level in levels.values()) else self.quiet_run + 1
        if self.quiet_run < self.resolve_events:
            return None
        resolution = Resolution(
            incident_id=self.open_incident or "", segment=self.segment, resolved_after_events=self.events
        )
        self.open_incident, self.open_causes, self.quiet_run = None, frozenset(), 0
        if not self.collection.pinned:
            self.rebase()
        return resolution
