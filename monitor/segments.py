"""Per-segment monitoring state: one detector per feature, recent evidence, and the incident draft.

A first shift starts a draft; shifts of other features within ``confirm_events`` join it; then the
incident opens. While it is open the segment raises nothing new (one incident per ongoing shift).
The whole object is pickled into a Faust table, so a restarted worker resumes it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from monitor.detectors import FeatureDetector, Shift
from monitor.events import TrafficEvent
from monitor.features import FEATURES
from monitor.incidents import SEVERITY, DriftIncident, Evidence, FeatureShift, incident_id, kind_of
from monitor.redact import redact

EVIDENCE_EXAMPLES = 8
EVIDENCE_WINDOW = 64
EVIDENCE_CHARS = 1000


@dataclass
class SegmentMonitor:
    segment: str
    delta: float
    warmup: int
    confirm_events: int
    detectors: dict[str, FeatureDetector] = field(init=False)
    events: int = 0
    incidents_opened: int = 0
    open_incident: str | None = None
    draft: dict[str, Shift] = field(default_factory=dict)
    draft_since: int = 0
    recent: deque[tuple[Evidence, dict[str, float]]] = field(default_factory=lambda: deque(maxlen=EVIDENCE_WINDOW))

    def __post_init__(self) -> None:
        self.detectors = {
            name: FeatureDetector(name, log_scale, self.delta, self.warmup) for name, log_scale in FEATURES.items()
        }

    @property
    def state(self) -> str:
        """quiet, drafting (a first shift is collecting evidence) or open (an incident is open)."""
        return "open" if self.open_incident else "drafting" if self.draft else "quiet"

    def observe(self, event: TrafficEvent, features: dict[str, float]) -> DriftIncident | None:
        """Update every detector with one event; return an incident when one opens."""
        self.events += 1
        response = redact(event.response)[:EVIDENCE_CHARS] if event.response else None
        self.recent.append((Evidence(prompt=redact(event.prompt_text)[:EVIDENCE_CHARS], response=response), features))
        for name, detector in self.detectors.items():
            shift = detector.update(features[name])
            if shift and self.open_incident is None and name not in self.draft:
                self.draft_since = self.draft_since if self.draft else self.events
                self.draft[name] = shift
        if self.draft and self.events - self.draft_since >= self.confirm_events:
            return self._open()
        return None

    def _open(self) -> DriftIncident:
        shifts = sorted(self.draft.values(), key=lambda s: s.detected_at)
        primary = shifts[0]
        upward = primary.current_mean >= primary.reference_mean
        window = list(self.recent)[-(self.events - primary.onset) :] or list(self.recent)
        window.sort(key=lambda item: item[1][primary.feature], reverse=upward)
        kind = kind_of([s.feature for s in shifts])
        incident = DriftIncident(
            id=incident_id(self.segment, self.incidents_opened),
            kind=kind,
            severity=SEVERITY[kind],
            segment=self.segment,
            features=[
                FeatureShift(
                    feature=s.feature,
                    reference_mean=s.reference_mean,
                    current_mean=s.current_mean,
                    statistic=s.statistic,
                    threshold=s.threshold,
                )
                for s in shifts
            ],
            detected_after_events=self.events,
            onset_event=min(s.onset for s in shifts),
            evidence=[evidence for evidence, _ in window[:EVIDENCE_EXAMPLES]],
        )
        self.incidents_opened += 1
        self.open_incident = incident.id
        self.draft = {}
        return incident
