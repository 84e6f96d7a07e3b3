"""An incident names every cause: at opening, and when another kind of change begins while it is open."""

import pickle
from pathlib import Path

import numpy as np
import pytest

from generators.recipes import load_recipes
from monitor.detector import Level
from monitor.incident_builder import EVIDENCE_WINDOW
from monitor.incidents import CauseAdded, DriftIncident, IncidentKind, Severity
from monitor.segments import SegmentMonitor
from tests.factories import StubEvent

BOOK = load_recipes()


def _monitor() -> SegmentMonitor:
    return SegmentMonitor("m/chat/t", service_ert=1e6, warmup=50, reference_events=800, resolve_events=300, seed=1)


def _rows(
    rng: np.random.Generator,
    n: int,
    latency: float = 6.0,
    attacks: float = 0.0,
    refusal: float = 0.02,
    short_refusals: bool = False,
) -> list[dict[str, float]]:
    """Events whose answers take ``latency`` (log ms) at 200 tokens each; attacked ones are refused (with
    ``short_refusals``, in a fifth of the tokens and time: the same pace)."""
    attacked = rng.random(n) < attacks
    short = 0.2 if short_refusals else 1.0
    return [
        {
            "latency_ms": float(x) * (short if a else 1.0),
            "tokens_per_s": 200 / (float(x) / 1000),
            "refusal": float(r or a),
            "injection_score": 0.67 if a else float(rng.random() < 0.01) * 0.33,
        }
        for x, r, a in zip(rng.lognormal(latency, 0.3, n), rng.random(n) < refusal, attacked, strict=True)
    ]


def _feed(monitor: SegmentMonitor, rows: list[dict[str, float]]) -> list:
    return [out for row in rows if (out := monitor.observe(StubEvent(), row))]  # type: ignore[arg-type]


def test_two_kinds_of_change_at_once_are_one_incident_naming_both_causes() -> None:
    rng = np.random.default_rng(11)
    monitor = _monitor()
    assert _feed(monitor, _rows(rng, 900)) == []
    [incident] = _feed(monitor, _rows(rng, 400, latency=6.6, attacks=0.3))
    assert isinstance(incident, DriftIncident)
    kinds = [cause.kind for cause in incident.causes]
    assert kinds == [IncidentKind.ATTACK_WAVE, IncidentKind.LATENCY_DRIFT]
    assert incident.kind == IncidentKind.ATTACK_WAVE and incident.severity == Severity.CRITICAL
    attack = incident.causes[0]
    assert "injection_score" in attack.features and "refusal" in attack.features, "refusals are the attack's symptom"
    assert set(incident.causes[1].features) == {"latency_ms", "tokens_per_s"}
    assert incident.causes[1].detectors == ["cusum"]
    assert "(with latency-drift)" in incident.headline
    assert [recipe.name for recipe in BOOK.for_incident(incident)] == ["attack-hardening"], "latency: on-call only"


def test_a_change_of_another_kind_while_open_adds_a_cause_and_a_symptom_does_not() -> None:
    rng = np.random.default_rng(12)
    monitor = _monitor()
    _feed(monitor, _rows(rng, 900))
    [incident] = _feed(monitor, _rows(rng, 200, latency=6.6))
    assert [c.kind for c in incident.causes] == [IncidentKind.LATENCY_DRIFT] and not BOOK.for_incident(incident)
    assert incident.severity == Severity.WARNING

    restored = pickle.loads(pickle.dumps(monitor))  # a worker restart in between keeps what the incident names
    [added] = _feed(restored, _rows(rng, 400, latency=6.6, attacks=0.3))
    assert isinstance(added, CauseAdded) and added.incident_id == incident.id
    assert added.cause.kind == IncidentKind.ATTACK_WAVE and "injection_score" in added.cause.features
    assert incident.detected_after_events < added.cause.detected_after_events <= restored.events
    assert added.cause.onset_event is not None and added.cause.onset_event > incident.detected_after_events - 50

    named = incident.with_cause(added.cause)
    assert [c.kind for c in named.causes] == [IncidentKind.ATTACK_WAVE, IncidentKind.LATENCY_DRIFT]
    assert named.kind == IncidentKind.ATTACK_WAVE and named.severity == Severity.CRITICAL
    assert [recipe.name for recipe in BOOK.for_incident(named)] == ["attack-hardening"]
    assert _feed(restored, _rows(rng, 300, latency=6.6, attacks=0.3, refusal=0.3)) == [], "refusals: a symptom"


def test_a_segment_that_resolves_names_causes_afresh() -> None:
    rng = np.random.default_rng(13)
    monitor = _monitor()
    _feed(monitor, _rows(rng, 900))
    [opened] = _feed(monitor, _rows(rng, 200, latency=6.6))
    back = _feed(monitor, _rows(rng, 700))
    assert [type(out).__name__ for out in back] == ["Resolution"] and monitor.open_causes == frozenset()
    assert opened.causes and monitor.state == "reference"


def test_a_cause_added_folds_the_causes_named_before_that_were_its_symptoms() -> None:
    from monitor.incidents import Cause

    quality = Cause(
        kind="quality-drop", severity="warning", features=["refusal"], detectors=["bernoulli-cusum"], onset_event=900
    )
    latency = Cause(
        kind="latency-drift", severity="warning", features=["latency_ms"], detectors=["cusum"], onset_event=880
    )
    attack = Cause(
        kind="attack-wave", severity="critical", features=["injection_score"], detectors=["cusum"], onset_event=905
    )
    incident = DriftIncident(
        id="i",
        kind="quality-drop",
        severity="warning",
        segment="m/chat/t",
        features=[],
        causes=[quality, latency],
        detected_after_events=950,
        onset_event=880,
    )
    named = incident.with_cause(attack)
    assert [c.kind for c in named.causes] == ["attack-wave", "latency-drift"], "the refusals were the attack's"
    assert named.causes[0].features == ["injection_score", "refusal"] and named.causes[0].onset_event == 900
    assert named.causes[0].detectors == ["cusum", "bernoulli-cusum"] and named.severity == "critical"


def test_latency_that_follows_shorter_refusals_is_the_attack_s_symptom_not_a_cause() -> None:
    rng = np.random.default_rng(14)
    monitor = _monitor()
    _feed(monitor, _rows(rng, 900))
    found = _feed(monitor, _rows(rng, 600, attacks=0.3, short_refusals=True))
    [incident] = [out for out in found if isinstance(out, DriftIncident)]
    assert [c.kind for c in incident.causes] == [IncidentKind.ATTACK_WAVE]
    assert "latency_ms" in incident.causes[0].features, "it moved, as the attack's symptom"
    assert not [out for out in found if isinstance(out, CauseAdded)], "the pace (tokens/s) never moved"


def test_refusals_that_rise_with_attack_scored_prompts_while_open_add_an_attack_not_a_quality_drop() -> None:
    rng = np.random.default_rng(15)
    monitor = _monitor()
    _feed(monitor, _rows(rng, 900))
    [incident] = _feed(monitor, _rows(rng, 200, latency=6.6))
    assert [c.kind for c in incident.causes] == [IncidentKind.LATENCY_DRIFT]

    attacked = iter(_rows(rng, 100, latency=6.6, attacks=0.15, refusal=0.3))
    added = next(out for row in attacked if (out := monitor.observe(StubEvent(), row)))  # type: ignore[arg-type]
    injection = monitor.detectors["injection_score"]
    assert injection.statistic < injection.threshold, "the attack scores alone have not drifted yet"
    assert isinstance(added, CauseAdded) and added.cause.kind == IncidentKind.ATTACK_WAVE, "refusals: its symptom"
    assert added.cause.features[0] == "refusal" and "injection_score" in added.cause.features, "named as at opening"
    assert _feed(monitor, list(attacked)) == [], "the attack's own drift adds nothing more"


def test_refusals_that_rise_alone_while_open_add_a_quality_drop() -> None:
    rng = np.random.default_rng(15)
    monitor = _monitor()
    _feed(monitor, _rows(rng, 900))
    _feed(monitor, _rows(rng, 200, latency=6.6))
    [added] = _feed(monitor, _rows(rng, 100, latency=6.6, refusal=0.3))
    assert isinstance(added, CauseAdded) and added.cause.kind == IncidentKind.QUALITY_DROP
    assert added.cause.features == ["refusal"]


def test_refusals_that_rose_slowly_with_a_few_attacks_add_an_attack_from_the_scores_over_their_whole_span() -> None:
    """The refusals drift some 700 events after they began, the attack scores never drift alone: over the last
    :data:`~monitor.incident_builder.EVIDENCE_WINDOW` events alone the scores did not move enough to name the attack
    (2% of prompts); over the refusals' span they did."""
    rng = np.random.default_rng(17)
    monitor = _monitor()
    _feed(monitor, _rows(rng, 900))
    _feed(monitor, _rows(rng, 200, latency=6.6))
    [added] = _feed(monitor, _rows(rng, 1000, latency=6.6, attacks=0.02, refusal=0.08))
    injection = monitor.detectors["injection_score"]
    assert injection.statistic < injection.threshold, "the attack scores alone have not drifted"
    assert isinstance(added, CauseAdded) and added.cause.kind == IncidentKind.ATTACK_WAVE
    assert added.cause.features == ["refusal", "injection_score"]
    assert added.cause.onset_event is not None
    assert added.cause.detected_after_events - added.cause.onset_event > 4 * EVIDENCE_WINDOW


MAIN_CHECKPOINT = Path(__file__).parent / "data" / "segment_checkpoint_main_cfa65e2.pkl"
"""A segment pickled by main's code before issue 16 (commit cfa65e2: no span sums in its incident builder, rates
watched as values off their mode), made with this module's ``_monitor()`` fed ``_rows(default_rng(17), 900)``."""


def test_a_segment_checkpointed_before_the_span_sums_restores_and_names_the_features_that_also_moved() -> None:
    """The span sums start empty at the restore: the also-moved features are taken over the events since then."""
    restored = pickle.loads(MAIN_CHECKPOINT.read_bytes())
    assert restored.events == 900 and restored.state == "quiet"
    assert len(restored.detectors["refusal"].knots) == 3, "calibrated by the old code: the rate of values off 0"
    rng = np.random.default_rng(23)
    [incident] = _feed(restored, _rows(rng, 200, latency=6.6))
    assert isinstance(incident, DriftIncident) and [c.kind for c in incident.causes] == [IncidentKind.LATENCY_DRIFT]
    [added] = _feed(restored, _rows(rng, 1000, latency=6.6, attacks=0.02, refusal=0.08))
    assert isinstance(added, CauseAdded) and added.cause.kind == IncidentKind.ATTACK_WAVE
    assert added.cause.features == ["refusal", "injection_score"], "the scores moved over the refusals' span"
    assert added.cause.onset_event is not None
    assert added.cause.detected_after_events - added.cause.onset_event > 4 * EVIDENCE_WINDOW
    again = pickle.loads(pickle.dumps(restored))
    assert again.builder.sums.means(since=1) == restored.builder.sums.means(since=1)


def _paced_rows(rng: np.random.Generator, n: int, tokens: float = 1.0, attacks: float = 0.0) -> list[dict]:
    """Events whose answers have lognormal token counts at a lognormal pace; ``tokens`` scales both, so the answers
    take as long as before, with fewer tokens: the pace falls with the token count."""
    counts, paces = rng.lognormal(np.log(200), 0.3, n) * tokens, rng.lognormal(np.log(40), 0.3, n) * tokens
    rows = []
    for count, pace, attacked in zip(counts, paces, rng.random(n) < attacks, strict=True):
        rows.append(
            {
                "latency_ms": float(count / pace * 1000),
                "completion_tokens": float(count),
                "tokens_per_s": float(pace),
                "refusal": float(attacked or rng.random() < 0.02),
                "injection_score": 0.67 if attacked else float(rng.random() < 0.01) * 0.33,
            }
        )
    return rows


@pytest.mark.parametrize("seed", [3, 8, 9])
def test_a_pace_that_falls_with_the_token_count_during_an_attack_adds_no_cause(seed: int) -> None:
    """The pace drifts first; over its span the token count also moved, so the pace is the token count's, a
    symptom of the attack already named: no cause, and the stream goes on (it raised IndexError, the worker then
    dead-lettered valid events)."""
    rng = np.random.default_rng(seed)
    monitor = _monitor()
    _feed(monitor, _paced_rows(rng, 900))
    [incident] = _feed(monitor, _paced_rows(rng, 300, attacks=0.3))
    assert [c.kind for c in incident.causes] == [IncidentKind.ATTACK_WAVE]
    drifted = False
    for row in _paced_rows(rng, 400, tokens=0.85, attacks=0.3):
        assert monitor.observe(StubEvent(), row) is None  # type: ignore[arg-type]
        drifted |= monitor.detectors["tokens_per_s"].level is Level.DRIFT
    assert drifted, "the pace drifted"
