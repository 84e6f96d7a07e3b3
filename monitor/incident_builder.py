"""A segment's incidents as they open: the moved features, the onset and redacted evidence of the drifted window.

The builder keeps the segment's recent events (cut, not yet redacted) for evidence; their text stays out of its
pickled state (the checkpoint), see :data:`EVIDENCE_WINDOW`. When a detector reaches its
drift level, :meth:`IncidentBuilder.drifted` makes the incident of the drafted inputs (the leading one first:
furthest past its drift level), its onset where the leading detector's departure began, the features outside the
draft whose mean since that onset moved by :data:`MOVED_Z` standard errors (from the running sums of
:class:`~monitor.span_sums.SpanSums`: the onset may be far older than the recent events), and evidence: the drifted
window's events most extreme in the direction the leading feature moved.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from core.redact import redact
from monitor.detector import Detector
from monitor.detector_set import DetectorSet
from monitor.events import TrafficEvent
from monitor.features import Measurements
from monitor.incidents import (
    SEVERITY,
    Cause,
    DriftIncident,
    Evidence,
    FeatureShift,
    IncidentKind,
    cause_kinds,
    incident_id,
    worst,
)
from monitor.inputs import NOT_SCALAR, scalars
from monitor.span_sums import SpanSums

EVIDENCE_EXAMPLES = 32
EVIDENCE_WINDOW = 128
"""Recent events kept for evidence (cut to EVIDENCE_CHARS): bounds the pickled state (Faust message size). They
are redacted when an incident takes them: redacting each event as it comes would cost about 400 times all its
features (Presidio: ~20 ms for a prompt and its response against ~60 µs). So their text is left out of the pickled
state (no raw prompt at rest in a checkpoint): a restored builder has the features of its recent events but not
their text, until new events replace them."""
EVIDENCE_CHARS = 1000
MOVED_Z = 5.0
"""A feature outside the draft joins an incident when its mean since the cause's onset is this many standard errors
off its reference mean (so a jailbreak wave that refusals page on first is still named an attack wave); the error
of that difference counts the reference's own (800 events)."""


class Excerpt(NamedTuple):
    """A recent event's prompt and response, cut to :data:`EVIDENCE_CHARS` (not redacted yet)."""

    prompt: str
    response: str | None


Window = list[tuple[Excerpt | None, dict[str, float]]]
"""Recent events (cut) with their scalar inputs; an event restored from a checkpoint has no text (None)."""


@dataclass
class IncidentBuilder:
    """The incidents of one segment, numbered as they open, and the recent events they take evidence from."""

    segment: str
    opened: int = 0
    recent: deque[tuple[Excerpt | None, dict[str, float]]] = field(
        default_factory=lambda: deque(maxlen=EVIDENCE_WINDOW)
    )
    sums: SpanSums = field(default_factory=SpanSums)

    def __getstate__(self) -> dict[str, object]:
        """The state to pickle: the recent events' features, not their text."""
        recent = deque(((None, features) for _, features in self.recent), maxlen=EVIDENCE_WINDOW)
        return {**self.__dict__, "recent": recent}

    def __setstate__(self, state: dict[str, object]) -> None:
        """Restore a pickled state; one checkpointed before the span sums (issue 16) starts them empty, so the
        features that also moved over a span begun before the restore are taken over the events since it."""
        self.__dict__.update({"sums": SpanSums(), **state})

    def remember(self, event: TrafficEvent, inputs: Measurements) -> None:
        """Keep the event (cut) and its scalar inputs among the recent ones, for an incident's evidence."""
        response = event.response[:EVIDENCE_CHARS] if event.response else None
        self.recent.append((Excerpt(event.prompt_text[:EVIDENCE_CHARS], response), scalars(inputs)))

    def count(self, inputs: Measurements, event: int) -> None:
        """Add the scalar inputs of the segment's ``event``-th event to the sums that name the features that also
        moved over a cause's span."""
        self.sums.add(scalars(inputs), event)

    def count_many(self, fed: dict[str, list[int]], values: dict[str, list], first: int, events: int) -> None:
        """:meth:`count` for the segment's events ``first`` to ``first + events - 1`` at once (``fed``: input name →
        positions among them, 0 the event ``first``, of the events that measured it; ``values``: its values there)."""
        columns = {
            name: (np.array(positions), np.array(values[name], dtype=float))
            for name, positions in fed.items()
            if positions and name not in NOT_SCALAR
        }
        self.sums.extend(columns, first, events)

    def since(self, onset: int, event: int) -> Window:
        """The recent events from the segment's event ``onset`` to its ``event``-th."""
        return list(self.recent)[-(event - onset + 1) :]

    def drifted(self, detectors: DetectorSet, event: int) -> DriftIncident:
        """The incident of the drafted inputs of ``detectors``, opened at the segment's ``event``-th event."""
        watched = detectors.detectors
        moved = sorted(detectors.draft, key=lambda name: -watched[name].statistic / watched[name].threshold)
        primary = watched[moved[0]]
        onset = primary.onset
        window = self.since(onset, event)
        upward = bool(np.mean([row.get(primary.feature, 0.0) for _, row in window]) >= primary.reference_mean)
        window.sort(key=lambda item: item[1].get(primary.feature, 0.0), reverse=upward)
        moved += self._also_moved(moved, onset, detectors.references)
        shifts = [self._shift(watched[name], window) for name in moved]
        return self._incident(causes(shifts, event), shifts, onset, window, event)

    def added(
        self, detectors: DetectorSet, drifting: list[str], named: Collection[IncidentKind], event: int
    ) -> Cause | None:
        """The cause that the inputs ``drifting`` of ``detectors`` add to an open incident naming ``named``, None
        when each of their kinds is named or a symptom of a named one. The most urgent new kind's inputs are named
        as an incident names its causes at opening: with the features that also moved over the events since the
        earliest of them began, so refusals that rise with prompts scored as attacks add an attack wave, not a
        quality drop."""
        new = _new_kinds(drifting, named)
        if not new:
            return None
        leading, watched = new[0][1], detectors.detectors
        onset = min(watched[name].onset for name in leading)
        window = self.since(onset, event)
        moved = leading + self._also_moved(leading, onset, detectors.references)
        found = _new_kinds(moved, named)
        if not found:  # with what also moved, a symptom of a named kind (fewer tokens in the same seconds)
            return None
        kind, names = found[0]
        return _cause(kind, [self._shift(watched[name], window) for name in names], event)

    def new_segment(self, first: int, event: int) -> DriftIncident:
        """The incident of a segment that appeared once the service was established: its reference began at its
        event ``first`` and is in at its ``event``-th."""
        cause = Cause(
            kind=IncidentKind.NEW_SEGMENT,
            severity=SEVERITY[IncidentKind.NEW_SEGMENT],
            features=[],
            detectors=[],
            onset_event=first,
            detected_after_events=event,
        )
        return self._incident([cause], [], first, list(self.recent), event)

    def _also_moved(self, drafted: list[str], onset: int, references: dict[str, np.ndarray]) -> list[str]:
        """Features outside the draft whose mean since the segment's event ``onset`` (:class:`SpanSums`) is
        :data:`MOVED_Z` standard errors (:func:`moved_z`) off the reference mean, furthest first."""
        found: dict[str, float] = {}
        means = self.sums.means(since=onset)
        for name, reference in references.items():
            mean, n = means.get(name, (0.0, 0))
            if name in drafted or n < 2 or float(reference.std()) == 0:
                continue
            z = moved_z(mean, n, reference)
            if z >= MOVED_Z:
                found[name] = z
        return sorted(found, key=lambda name: -found[name])

    @staticmethod
    def _shift(detector: Detector, window: Window) -> FeatureShift:
        """The input's reference mean and its mean now (a windowed test's: its statistic's null median and its
        value now)."""
        return FeatureShift(
            feature=detector.feature,
            reference_mean=detector.reference_mean,
            current_mean=detector.current_mean([row[detector.feature] for _, row in window if detector.feature in row]),
            statistic=detector.statistic,
            threshold=detector.threshold,
            detector=detector.kind,
            onset_event=detector.onset,
        )

    def _incident(
        self, causes: list[Cause], shifts: list[FeatureShift], onset: int, window: Window, event: int
    ) -> DriftIncident:
        """A new incident, detected at the segment's ``event``-th event, with the first of ``window`` as evidence."""
        incident = DriftIncident(
            id=incident_id(self.segment, self.opened),
            kind=causes[0].kind,
            severity=worst(causes),
            segment=self.segment,
            features=shifts,
            causes=causes,
            detected_after_events=event,
            onset_event=onset,
            evidence=[
                Evidence(prompt=redact(e.prompt), response=redact(e.response) if e.response else None)
                for e in [e for e, _ in window if e is not None][:EVIDENCE_EXAMPLES]
            ],
        )
        self.opened += 1
        return incident


def moved_z(mean: float, n: int, reference: np.ndarray) -> float:
    """Standard errors between the ``mean`` of ``n`` events and the ``reference``'s mean: the error of their
    difference, the reference's own included, so a span longer than the reference is no surer than it (a reference
    that happened to hold few of a rare feature's nonzero values is not taken as the truth).

    >>> reference = np.random.default_rng(0).normal(0.0, 1.0, 800)
    >>> round(moved_z(float(reference.mean()) + 0.2, 3200, reference), 1)  # 11.3 of the span's own errors
    5.1
    """
    return abs(mean - float(reference.mean())) / (float(reference.std()) * math.sqrt(1 / n + 1 / len(reference)))


def causes(shifts: list[FeatureShift], event: int) -> list[Cause]:
    """The causes that ``shifts`` signal (:func:`monitor.incidents.cause_kinds`), most urgent first, named at the
    segment's ``event``-th event."""
    by_feature = {shift.feature: shift for shift in shifts}
    return [
        _cause(kind, [by_feature[name] for name in features], event)
        for kind, features in cause_kinds(list(by_feature)).items()
    ]


def _new_kinds(features: list[str], named: Collection[IncidentKind]) -> list[tuple[IncidentKind, list[str]]]:
    """The kinds (with their features, most urgent first) that moved ``features`` signal beyond those ``named``."""
    return [(kind, names) for kind, names in cause_kinds(features, named).items() if kind not in named]


def _cause(kind: IncidentKind, shifts: list[FeatureShift], event: int) -> Cause:
    return Cause(
        kind=kind,
        severity=SEVERITY[kind],
        features=[shift.feature for shift in shifts],
        detectors=list(dict.fromkeys(shift.detector for shift in shifts)),
        onset_event=min((o for shift in shifts if (o := shift.onset_event) is not None), default=None),
        detected_after_events=event,
    )
