"""Detection on real traffic, without services: features and segment monitors as the worker runs them."""

import json
import pickle

from driftloop.traffic import MODELS, ShiftPlan, shifted_stream
from monitor import DriftIncident, SegmentMonitor, extract_features, parse_event

EVENTS = 4000


def run(events: list[dict], monitors: dict[str, SegmentMonitor] | None = None) -> list[DriftIncident]:
    monitors = {} if monitors is None else monitors
    found = []
    for raw in events:
        event = parse_event(json.dumps(raw))
        monitor = monitors.setdefault(event.segment, SegmentMonitor(event.segment, 1e-5, 300, 100))
        incident = monitor.observe(event, extract_features(event))
        if incident:
            found.append(incident)
    return found


def test_attack_wave_opens_one_incident_in_the_shifted_segment_only() -> None:
    plan = ShiftPlan(shift_at=EVENTS // 2, attack_model=MODELS[0], latency_model=None)
    incidents = run(list(shifted_stream(EVENTS, plan, seed=3)))
    assert len(incidents) == 1
    incident = incidents[0]
    assert incident.kind == "attack-wave"
    assert incident.segment.startswith(MODELS[0] + "/")
    moved = {shift.feature: shift for shift in incident.features}
    assert moved["injection_score"].current_mean > 5 * moved["injection_score"].reference_mean
    shift_in_segment = EVENTS // 4
    assert abs(incident.onset_event - shift_in_segment) < 50
    assert incident.evidence and all(len(e.prompt) <= 1000 for e in incident.evidence)


def test_latency_regression_is_a_latency_incident() -> None:
    plan = ShiftPlan(shift_at=EVENTS // 2, attack_model=None, latency_model=MODELS[1])
    incidents = run(list(shifted_stream(EVENTS, plan, seed=4)))
    assert [(i.kind, i.segment.split("/")[0]) for i in incidents] == [("latency-drift", MODELS[1])]


def test_quiet_stream_of_the_same_length_stays_quiet() -> None:
    for seed in range(3):
        assert run(list(shifted_stream(EVENTS, None, seed=seed))) == []


def test_pickled_state_resumes_exactly() -> None:
    """What the worker checkpoints into its Faust table continues as if never interrupted."""
    events = list(shifted_stream(EVENTS, ShiftPlan(shift_at=EVENTS // 2), seed=5))
    straight = run(events)
    monitors: dict[str, SegmentMonitor] = {}
    run(events[:2100], monitors)
    restored = {k: pickle.loads(pickle.dumps(v)) for k, v in monitors.items()}
    resumed = run(events[2100:], restored)
    assert [i.model_dump(exclude={"detected_at"}) for i in resumed] == [
        i.model_dump(exclude={"detected_at"}) for i in straight
    ]
