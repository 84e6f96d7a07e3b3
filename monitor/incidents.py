"""DriftIncident: what moved, where, when, and the evidence, as published on ``driftloop.incidents``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

INCIDENT_NAMESPACE = uuid.UUID("5b0c8c1e-2f7a-4f57-9b8e-0d1f3c6a7e21")


class IncidentKind(StrEnum):
    ATTACK_WAVE = "attack-wave"
    QUALITY_DROP = "quality-drop"
    LATENCY_DRIFT = "latency-drift"
    INPUT_SHIFT = "input-shift"


#: Feature -> the kind of incident its shift signals; earlier kinds win when several features move.
FEATURE_KIND: dict[str, IncidentKind] = {
    "injection_score": IncidentKind.ATTACK_WAVE,
    "refusal": IncidentKind.QUALITY_DROP,
    "latency_ms": IncidentKind.LATENCY_DRIFT,
    "tokens_per_s": IncidentKind.LATENCY_DRIFT,
    "prompt_chars": IncidentKind.INPUT_SHIFT,
    "prompt_tokens": IncidentKind.INPUT_SHIFT,
    "response_chars": IncidentKind.INPUT_SHIFT,
    "completion_tokens": IncidentKind.INPUT_SHIFT,
}
_PRIORITY = list(IncidentKind)


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


SEVERITY: dict[IncidentKind, Severity] = {
    IncidentKind.ATTACK_WAVE: Severity.CRITICAL,
    IncidentKind.QUALITY_DROP: Severity.WARNING,
    IncidentKind.LATENCY_DRIFT: Severity.WARNING,
    IncidentKind.INPUT_SHIFT: Severity.INFO,
}


class FeatureShift(BaseModel):
    feature: str
    reference_mean: float
    current_mean: float
    statistic: float
    threshold: float
    detector: str = "river.ADWIN"


class Evidence(BaseModel):
    """A redacted example from the drifted window."""

    prompt: str
    response: str | None = None


class DriftIncident(BaseModel):
    id: str
    kind: IncidentKind
    segment: str
    severity: Severity = Severity.INFO
    status: str = "open"
    features: list[FeatureShift]
    detected_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    detected_after_events: int = Field(description="events of the segment seen when the incident opened")
    onset_event: int = Field(description="estimated segment event index where the change began")
    evidence: list[Evidence] = Field(default_factory=list)
    report_url: str | None = None

    @property
    def headline(self) -> str:
        """One line for people: kind, segment and what moved."""
        moved = ", ".join(f"{s.feature} {s.reference_mean:.3g}→{s.current_mean:.3g}" for s in self.features)
        return f"{self.kind} in {self.segment}: {moved}"


def incident_id(segment: str, sequence: int) -> str:
    """Deterministic id: the ``sequence``-th incident of ``segment``, so a replayed stream names it the same."""
    return str(uuid.uuid5(INCIDENT_NAMESPACE, f"{segment}#{sequence}"))


def kind_of(features: list[str]) -> IncidentKind:
    """The most urgent kind among the moved features."""
    return min((FEATURE_KIND[f] for f in features), key=_PRIORITY.index)
