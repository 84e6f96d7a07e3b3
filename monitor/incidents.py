"""DriftIncident: what moved, where, when, and the evidence, as published on ``driftloop.incidents``.

An incident names every cause of the change it opened on (:class:`Cause`: a kind, its severity, the features and
detectors behind it, its onset); its ``kind`` and ``severity`` are its most urgent cause's. Several kinds of change
in one segment at once are one incident with causes, not linked incidents: they share one change point, one
drifted window and its evidence, one lifecycle (on-call acknowledges and resolves the change, and the segment
resolves when all of it is back), while each cause still gets its own job (its kind's recipe, if any).

An incident's lifecycle is open → acknowledged → resolved (open → resolved too: the monitor resolves an
incident by itself when its segment returns to the reference, and an operator by hand). A candidate model
trained on the incident's dataset moves it to ``fix-verified`` (the one way it closes as fixed; final) or
``fix-rejected`` (still to fix: a later candidate may be verified, an operator may resolve it). The verdict may
come after the drift ended, so a resolved incident can still take it. :func:`transition` is the one way to
change it:

>>> incident = DriftIncident(id="i", kind="attack-wave", segment="m/chat/t", features=[],
...                          detected_after_events=900, onset_event=850)
>>> acked = transition(incident, IncidentStatus.ACKNOWLEDGED)
>>> str(acked.status), acked.acknowledged_at is not None, str(incident.status)
('acknowledged', True, 'open')
>>> transition(transition(acked, "resolved"), "acknowledged")
Traceback (most recent call last):
...
monitor.incidents.InvalidTransition: incident i is resolved; it cannot become acknowledged
>>> fixed = transition(transition(acked, "resolved"), "fix-verified")
>>> str(fixed.status), fixed.fixed_at is not None
('fix-verified', True)
>>> transition(fixed, "resolved")
Traceback (most recent call last):
...
monitor.incidents.InvalidTransition: incident i is fix-verified; it cannot become resolved
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from core.errors import Conflict

INCIDENT_NAMESPACE = uuid.UUID("5b0c8c1e-2f7a-4f57-9b8e-0d1f3c6a7e21")


class IncidentKind(StrEnum):
    """What an incident is about; listed from the most to the least urgent (the first wins when several apply)."""

    ATTACK_WAVE = "attack-wave"
    QUALITY_DROP = "quality-drop"
    LATENCY_DRIFT = "latency-drift"
    COST_DRIFT = "cost-drift"
    NEW_SEGMENT = "new-segment"
    LANGUAGE_SHIFT = "language-shift"
    TOPIC_SHIFT = "topic-shift"
    INPUT_SHIFT = "input-shift"
    ROBUSTNESS_REGRESSION = "robustness-regression"
    MANUAL = "manual"
    """Not detected: a generation job asked for by hand (``POST /v1/jobs``); never opened by the monitor."""


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    FIX_VERIFIED = "fix-verified"
    """A candidate model trained on the incident's dataset was verified against it: closed as fixed."""
    FIX_REJECTED = "fix-rejected"
    """The latest candidate model failed verification."""


_VERDICTS = frozenset({IncidentStatus.FIX_VERIFIED, IncidentStatus.FIX_REJECTED})
#: Status -> the statuses it may move to.
TRANSITIONS: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    IncidentStatus.OPEN: frozenset({IncidentStatus.ACKNOWLEDGED, IncidentStatus.RESOLVED, *_VERDICTS}),
    IncidentStatus.ACKNOWLEDGED: frozenset({IncidentStatus.RESOLVED, *_VERDICTS}),
    IncidentStatus.RESOLVED: _VERDICTS,
    IncidentStatus.FIX_REJECTED: frozenset({IncidentStatus.ACKNOWLEDGED, IncidentStatus.RESOLVED, *_VERDICTS}),
    IncidentStatus.FIX_VERIFIED: frozenset(),
}


class InvalidTransition(Conflict, ValueError):
    """A status change the lifecycle does not allow; carries the incident id and both statuses."""

    def __init__(self, incident_id: str, current: IncidentStatus, requested: IncidentStatus) -> None:
        super().__init__(f"incident {incident_id} is {current}; it cannot become {requested}")
        self.incident_id, self.current, self.requested = incident_id, current, requested


#: Feature -> the kind of incident its shift signals; earlier kinds win when several features move.
FEATURE_KIND: dict[str, IncidentKind] = {
    "injection_score": IncidentKind.ATTACK_WAVE,
    "refusal": IncidentKind.QUALITY_DROP,
    "negative_feedback": IncidentKind.QUALITY_DROP,
    "judge_score": IncidentKind.QUALITY_DROP,
    "latency_ms": IncidentKind.LATENCY_DRIFT,
    "tokens_per_s": IncidentKind.LATENCY_DRIFT,
    "cost_usd": IncidentKind.COST_DRIFT,
    "prompt_chars": IncidentKind.INPUT_SHIFT,
    "prompt_tokens": IncidentKind.INPUT_SHIFT,
    "response_chars": IncidentKind.INPUT_SHIFT,
    "completion_tokens": IncidentKind.INPUT_SHIFT,
    "prompt_embedding": IncidentKind.TOPIC_SHIFT,
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
    IncidentKind.COST_DRIFT: Severity.WARNING,
    IncidentKind.NEW_SEGMENT: Severity.INFO,
    IncidentKind.LANGUAGE_SHIFT: Severity.WARNING,
    IncidentKind.TOPIC_SHIFT: Severity.INFO,
    IncidentKind.INPUT_SHIFT: Severity.INFO,
    IncidentKind.ROBUSTNESS_REGRESSION: Severity.WARNING,
}


SYMPTOMS: dict[IncidentKind, frozenset[IncidentKind]] = {
    IncidentKind.ATTACK_WAVE: frozenset({IncidentKind.QUALITY_DROP, IncidentKind.INPUT_SHIFT, IncidentKind.COST_DRIFT}),
    IncidentKind.QUALITY_DROP: frozenset({IncidentKind.COST_DRIFT}),
    IncidentKind.LANGUAGE_SHIFT: frozenset(
        {IncidentKind.INPUT_SHIFT, IncidentKind.TOPIC_SHIFT, IncidentKind.COST_DRIFT}
    ),
    IncidentKind.TOPIC_SHIFT: frozenset({IncidentKind.INPUT_SHIFT, IncidentKind.COST_DRIFT}),
    IncidentKind.INPUT_SHIFT: frozenset({IncidentKind.COST_DRIFT}),
}
"""Cause kind -> kinds whose features, moving with it, are its symptoms rather than causes of their own: refusals
rise when attacks are refused, and prompt lengths and character mixes move with a new language or topic. A bill
moves with the tokens asked and answered, so cost is a symptom of any change in what is asked or answered (short
refusals cost less); on its own (the token counts have not crossed) it is a cost drift. Latency is never a symptom:
a model serving slower is a cause of its own whatever the traffic does. A new language moves the prompt embeddings
too (an English sentence encoder places other languages apart), so a topic shift that comes with a language shift
is folded into it: a new topic in the same languages is still named on its own."""


CONTENT = frozenset(
    {
        IncidentKind.ATTACK_WAVE,
        IncidentKind.QUALITY_DROP,
        IncidentKind.LANGUAGE_SHIFT,
        IncidentKind.TOPIC_SHIFT,
        IncidentKind.INPUT_SHIFT,
    }
)
"""Kinds of change in what is asked or answered (not in how fast it is served)."""
AGGREGATE = "feature_profile"
"""The windowed test of every numeric feature's deciles at once: it moves with any of them, so it names a cause
(an input shift) only when nothing else does."""


class FeatureShift(BaseModel):
    """One feature that moved: its means (reference vs the drifted window) and the detector's evidence."""

    feature: str
    reference_mean: float
    current_mean: float
    statistic: float
    threshold: float = Field(description="the drift level the statistic crossed, calibrated to the detector's ERT")
    detector: str = "cusum"
    onset_event: int | None = Field(None, description="segment event index where this feature's change began")


class Cause(BaseModel):
    """One kind of change behind an incident: the moved features that signal it (its symptoms included), the
    detectors that saw them and where it began."""

    kind: IncidentKind
    severity: Severity
    features: list[str] = Field(description="the moved inputs behind this cause, the leading one first")
    detectors: list[str] = Field(description="the detectors that saw them (cusum, mmd, ...)")
    onset_event: int | None = Field(None, description="segment event index where the earliest of them began")
    detected_after_events: int | None = Field(
        None, description="segment events seen when this cause was named (later than the incident's: a cause added)"
    )


class Evidence(BaseModel):
    """A redacted example from the drifted window."""

    prompt: str
    response: str | None = None


class DriftIncident(BaseModel):
    id: str
    kind: IncidentKind
    segment: str
    severity: Severity = Severity.INFO
    status: IncidentStatus = IncidentStatus.OPEN
    features: list[FeatureShift]
    causes: list[Cause] = Field(default_factory=list, description="every cause, the most urgent first")
    detected_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    detected_after_events: int = Field(description="events of the segment seen when the incident opened")
    onset_event: int = Field(description="estimated segment event index where the change began")
    evidence: list[Evidence] = Field(default_factory=list, description="redacted examples from the drifted window")
    report_url: str | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    fixed_at: datetime | None = Field(None, description="when a verified candidate closed it as fixed")
    resolved_after_events: int | None = Field(None, description="segment events seen when the monitor resolved it")

    @property
    def headline(self) -> str:
        """One line for people: kind (and other causes), segment and what moved."""
        moved = ", ".join(f"{s.feature} {s.reference_mean:.3g}→{s.current_mean:.3g}" for s in self.features)
        others = [str(cause.kind) for cause in self.causes if cause.kind != self.kind]
        also = f" (with {', '.join(others)})" if others else ""
        return f"{self.kind}{also} in {self.segment}: {moved}"

    def with_cause(self, cause: Cause) -> DriftIncident:
        """A copy naming ``cause`` too; causes named before that are its symptoms (:data:`SYMPTOMS`: refusals
        named a quality drop before the attack behind them was seen) are folded into it. Kind and severity follow
        the most urgent cause."""
        symptoms = [c for c in self.causes if c.kind in SYMPTOMS.get(cause.kind, ())]
        if symptoms:
            cause = cause.model_copy(
                update={
                    "features": list(dict.fromkeys([*cause.features, *(f for c in symptoms for f in c.features)])),
                    "detectors": list(dict.fromkeys([*cause.detectors, *(d for c in symptoms for d in c.detectors)])),
                    "onset_event": min(
                        (o for c in [cause, *symptoms] if (o := c.onset_event) is not None), default=None
                    ),
                }
            )
        kept = [c for c in self.causes if c not in symptoms]
        causes = sorted([*kept, cause], key=lambda c: _PRIORITY.index(c.kind))
        return self.model_copy(update={"causes": causes, "kind": causes[0].kind, "severity": worst(causes)})


def incident_id(segment: str, sequence: int) -> str:
    """Deterministic id: the ``sequence``-th incident of ``segment``, so a replayed stream names it the same."""
    return str(uuid.uuid5(INCIDENT_NAMESPACE, f"{segment}#{sequence}"))


class Resolution(BaseModel):
    """The monitor's word that the segment of an open incident is back to its reference."""

    incident_id: str
    segment: str
    resolved_after_events: int


class CauseAdded(BaseModel):
    """The monitor's word that the open incident of a segment has a new cause: a kind of change that began, or
    reached its drift level, after the incident opened (a latency regression an hour into an attack wave)."""

    incident_id: str
    segment: str
    cause: Cause


Outcome = DriftIncident | Resolution | CauseAdded
"""What a segment's monitor reaches: an incident opened, resolved, or given a cause."""


_STAMPS = {
    IncidentStatus.ACKNOWLEDGED: "acknowledged_at",
    IncidentStatus.RESOLVED: "resolved_at",
    IncidentStatus.FIX_VERIFIED: "fixed_at",
}


def transition(incident: DriftIncident, to: IncidentStatus | str, at: datetime | None = None) -> DriftIncident:
    """A copy of ``incident`` moved to status ``to`` and stamped (``acknowledged_at``/``resolved_at``).

    Raises :class:`InvalidTransition` when the lifecycle forbids the move (moving to the same status too).
    """
    target = IncidentStatus(to)
    if target not in TRANSITIONS[incident.status]:
        raise InvalidTransition(incident.id, incident.status, target)
    update: dict[str, object] = {"status": target}
    if stamp := _STAMPS.get(target):
        update[stamp] = at or datetime.now(UTC)
    return incident.model_copy(update=update)


def feature_kind(feature: str) -> IncidentKind:
    """The kind of incident a shift of ``feature`` signals (:data:`FEATURE_KIND`, else by name, else input shift).

    >>> [str(feature_kind(f)) for f in ("refusal", "language_other", "topic_novelty")]
    ['quality-drop', 'language-shift', 'topic-shift']
    """
    if feature in FEATURE_KIND:
        return FEATURE_KIND[feature]
    for stem, kind in (("injection", IncidentKind.ATTACK_WAVE), ("lang", IncidentKind.LANGUAGE_SHIFT)):
        if stem in feature:
            return kind
    return IncidentKind.TOPIC_SHIFT if "topic" in feature else IncidentKind.INPUT_SHIFT


def cause_kinds(features: list[str], named: Collection[IncidentKind] = ()) -> dict[IncidentKind, list[str]]:
    """The causes that moved ``features`` signal, most urgent first, each with its features (in the given order),
    given the causes ``named`` already (an open incident's): a kind that is a symptom (:data:`SYMPTOMS`) of another
    present or named kind is folded into the first such kind; ``latency_ms`` without ``tokens_per_s`` (answers got
    shorter or longer at the same pace: refusals) into a content cause; ``tokens_per_s`` with ``completion_tokens``
    but without ``latency_ms`` (as many seconds, more or fewer tokens counted) into the token count's cause;
    :data:`AGGREGATE` into any other cause.

    >>> {str(k): v for k, v in cause_kinds(["refusal", "latency_ms", "injection_score", "tokens_per_s"]).items()}
    {'attack-wave': ['refusal', 'injection_score'], 'latency-drift': ['latency_ms', 'tokens_per_s']}
    >>> {str(k): v for k, v in cause_kinds(["refusal", "latency_ms", "injection_score", "prompt_chars"]).items()}
    {'attack-wave': ['refusal', 'latency_ms', 'injection_score', 'prompt_chars']}
    >>> {str(k): v for k, v in cause_kinds(["cost_usd", "completion_tokens", "tokens_per_s"]).items()}
    {'cost-drift': ['cost_usd'], 'input-shift': ['completion_tokens', 'tokens_per_s']}
    >>> [str(k) for k in cause_kinds(["feature_profile"], named=[IncidentKind.LATENCY_DRIFT])]
    ['latency-drift']
    >>> [str(k) for k in cause_kinds(["latency_ms", "feature_profile"], named=[IncidentKind.LATENCY_DRIFT])]
    ['latency-drift']
    """
    signalled = {feature: feature_kind(feature) for feature in features}
    if "tokens_per_s" in signalled and "completion_tokens" in signalled and "latency_ms" not in signalled:
        signalled["tokens_per_s"] = signalled["completion_tokens"]
    present = {kind for feature, kind in signalled.items() if feature != AGGREGATE} | set(named)
    content = [kind for kind in _PRIORITY if kind in present and kind in CONTENT]
    paced = "tokens_per_s" in signalled or IncidentKind.LATENCY_DRIFT in named
    if content and "latency_ms" in signalled and not paced:
        signalled["latency_ms"] = content[0]
    others = [kind for kind in _PRIORITY if kind in present | {signalled.get("latency_ms")} and kind is not None]
    others = [kind for kind in others if kind is not IncidentKind.INPUT_SHIFT]
    if AGGREGATE in signalled and others:
        signalled[AGGREGATE] = others[0]
    owners: dict[IncidentKind, IncidentKind] = {}
    for kind in sorted(set(signalled.values()) | set(named), key=_PRIORITY.index):
        holder = next((other for other in owners.values() if kind in SYMPTOMS.get(other, ())), None)
        owners[kind] = holder or kind
    causes: dict[IncidentKind, list[str]] = {}
    for feature, kind in signalled.items():
        causes.setdefault(owners[kind], []).append(feature)
    return dict(sorted(causes.items(), key=lambda item: _PRIORITY.index(item[0])))


def worst(causes: list[Cause]) -> Severity:
    """The most severe of ``causes``' severities (info when there is none)."""
    order = list(Severity)
    return min((cause.severity for cause in causes), key=order.index, default=Severity.INFO)
