"""Detection on real traffic, without services: features and segment monitors as the worker runs them."""

import copy
import json
import pickle

import numpy as np
import pytest

from devtools.traffic import MODELS, ShiftPlan, shifted_stream
from monitor.detector import Level, alarms
from monitor.detectors import calibrated
from monitor.events import parse_event
from monitor.features import extract_features
from monitor.incidents import DriftIncident, Resolution
from monitor.inputs import OPTIONAL
from monitor.segments import SegmentMonitor
from tests.factories import StubEvent

EVENTS = 4000
SHIFT_IN_SEGMENT = EVENTS // 4  # the plan shifts at EVENTS // 2; each of the two models gets half the events


def monitor_for(segment: str, novel: bool = False) -> SegmentMonitor:
    return SegmentMonitor(
        segment, service_ert=1e6, warmup=50, reference_events=800, resolve_events=300, novel=novel, seed=1
    )


def run(events: list[dict], monitors: dict[str, SegmentMonitor] | None = None) -> list[DriftIncident | Resolution]:
    monitors = {} if monitors is None else monitors
    found = []
    for raw in events:
        event = parse_event(json.dumps(raw))
        monitor = monitors.setdefault(event.segment, monitor_for(event.segment))
        outcome = monitor.observe(event, extract_features(event, language="en"))
        if outcome:
            found.append(outcome)
    return found


def test_an_attack_wave_gives_redacted_evidence_and_windows_for_its_report() -> None:
    plan = ShiftPlan(shift_at=EVENTS // 2, attack_model=MODELS[0], latency_model=None)
    monitors: dict[str, SegmentMonitor] = {}
    for raw in shifted_stream(EVENTS, plan, seed=3):
        if raw["model"] == MODELS[0]:
            raw["prompt"] = f"{raw['prompt']} (reach me at ann.lee@corp-mail.com)"
        if incidents := run([raw], monitors):
            break
    [incident] = incidents
    assert incident.evidence and all("@corp-mail.com" not in e.prompt for e in incident.evidence)
    reference, current = monitors[incident.segment].report_windows(incident.onset_event)
    assert len(reference) == 200 and len(current) == incident.detected_after_events - incident.onset_event + 1
    assert set(reference[0]) == set(current[0]) and {"prompt", "injection_score", "refusal"} <= set(current[0])
    mean = {
        name: np.mean([row["injection_score"] for row in rows]) for name, rows in (("ref", reference), ("cur", current))
    }
    assert mean["cur"] > 5 * mean["ref"]


@pytest.mark.slow
def test_latency_regression_is_a_latency_incident() -> None:
    plan = ShiftPlan(shift_at=EVENTS // 2, attack_model=None, latency_model=MODELS[1])
    incidents = run(list(shifted_stream(EVENTS, plan, seed=4)))
    assert [(i.kind, i.segment.split("/")[0]) for i in incidents] == [("latency-drift", MODELS[1])]


@pytest.mark.slow
def test_quiet_stream_of_the_same_length_stays_quiet() -> None:
    for seed in range(3):
        assert run(list(shifted_stream(EVENTS, None, seed=seed))) == []


@pytest.mark.slow
def test_pickled_state_resumes_exactly() -> None:
    """What the worker checkpoints into its Faust table continues as if never interrupted; only the evidence may
    differ: the events kept before the restart come back without their text (no raw prompt at rest)."""
    events = list(shifted_stream(EVENTS, ShiftPlan(shift_at=EVENTS // 2), seed=5))
    straight = run(events)
    monitors: dict[str, SegmentMonitor] = {}
    run(events[:2010], monitors)  # the shift began at 2000: the detectors are part-way up
    restored = {k: pickle.loads(pickle.dumps(v)) for k, v in monitors.items()}
    assert all(m.detectors and m.detector_set.references for m in restored.values())  # reference and detectors survive
    resumed = run(events[2010:], restored)
    assert resumed and [i.model_dump(exclude={"detected_at", "evidence"}) for i in resumed] == [
        i.model_dump(exclude={"detected_at", "evidence"}) for i in straight
    ]
    assert all(i.evidence for i in resumed if isinstance(i, DriftIncident))


def _rows(rng: np.random.Generator, n: int, latency: float = 6.0, refusal: float = 0.02) -> list[dict[str, float]]:
    return [
        {"latency_ms": float(x), "refusal": float(r)}
        for x, r in zip(rng.lognormal(latency, 0.3, n), rng.random(n) < refusal, strict=True)
    ]


def feed(monitor: SegmentMonitor, rows: list[dict[str, float]]) -> list[tuple[int, DriftIncident | Resolution]]:
    return [(monitor.events, out) for row in rows if (out := monitor.observe(StubEvent(), row))]  # type: ignore[arg-type]


def test_an_incident_resolves_itself_when_the_stream_returns_and_only_one_opens_per_shift() -> None:
    rng = np.random.default_rng(2)
    monitor = monitor_for("m/chat/t")
    feed(monitor, _rows(rng, 900))
    assert monitor.state == "quiet"
    during = feed(monitor, _rows(rng, 1500, latency=6.5))
    assert len(during) == 1 and isinstance(during[0][1], DriftIncident) and monitor.state == "open"
    assert during[0][1].kind == "latency-drift" and during[0][0] - 900 < 60
    after = feed(monitor, _rows(rng, 600))
    assert len(after) == 1 and isinstance(after[0][1], Resolution)
    assert after[0][1].incident_id == during[0][1].id
    assert 2400 + 300 <= after[0][0] < 2400 + 600
    assert monitor.state == "reference"  # a rolling reference is rebuilt


def test_refusal_rate_rise_is_found_by_the_bernoulli_detector() -> None:
    rng = np.random.default_rng(3)
    monitor = monitor_for("m/chat/t")
    assert feed(monitor, _rows(rng, 900)) == []
    assert monitor.detectors["refusal"].kind == "bernoulli-cusum"
    found = feed(monitor, _rows(rng, 2000, refusal=0.12))
    assert [out.kind for _, out in found] == ["quality-drop"]


def test_a_pinned_reference_recalibrates_and_a_novel_segment_is_an_incident() -> None:
    rng = np.random.default_rng(4)
    monitor = monitor_for("m/new-route/t", novel=True)
    found = feed(monitor, _rows(rng, 900))
    assert [out.kind for _, out in found] == ["new-segment"] and monitor.state == "quiet"
    monitor.pin_reference(_rows(rng, 1000, latency=7.0))
    assert monitor.collection.pinned and monitor.detectors["latency_ms"].reference_mean > 900
    assert [out.kind for _, out in feed(monitor, _rows(rng, 300))] == ["latency-drift"]  # 6.0 is now a shift


@pytest.mark.parametrize("reference", ["lognormal", "bernoulli", "discrete"])
def test_each_detector_finds_a_planted_shift_and_stays_quiet_on_a_planted_null(reference: str) -> None:
    rng = np.random.default_rng(5)
    draw = {
        "lognormal": lambda n, shift: rng.lognormal(5 + 0.5 * 0.4 * shift, 0.4, n),
        "bernoulli": lambda n, shift: (rng.random(n) < 0.03 * (1 + shift)).astype(float),
        "discrete": lambda n, shift: rng.choice(
            [0.0, 1 / 3, 2 / 3, 1.0], n, p=[0.9 - 0.1 * shift, 0.08, 0.01, 0.01 + 0.1 * shift]
        ),
    }[reference]
    detector = calibrated("x", draw(4000, 0), ert=1e7, warning_ert=1e4)
    assert not any(detector.update(x) is Level.DRIFT for x in draw(20_000, 0))
    assert next(i for i, x in enumerate(draw(5000, 1)) if detector.update(x) is Level.DRIFT) < 1500


@pytest.mark.parametrize(
    "draw",
    [
        pytest.param(lambda rng, n, shift: rng.normal(shift, 1, n), id="scalar"),
        # its null is pooled and recalibrated at 1,600, 3,200 and 6,400 events, between its alarms
        pytest.param(lambda rng, n, shift: (rng.random(n) < 0.02 + 0.03 * shift).astype(float), id="rate"),
    ],
)
def test_vectorised_alarms_match_the_online_detector(draw) -> None:
    """The benchmark runs detectors vectorised; they must alarm exactly where the online detector does."""
    rng = np.random.default_rng(6)
    detector = calibrated("x", draw(rng, 800, 0), ert=300, warning_ert=30)
    stream = np.concatenate([draw(rng, 6000, 0), draw(rng, 1000, 1)])
    vectorised = copy.deepcopy(detector)
    online = []
    for i, x in enumerate(stream):
        if detector.update(x) is Level.DRIFT:
            online.append(i)
            detector.restart()
    assert online and alarms(vectorised, stream) == online
    assert vectorised.threshold == detector.threshold and vectorised.seen == detector.seen == 7000


def test_a_sampled_feature_short_of_reference_rows_gets_its_detector_later_and_resumes_from_a_pickle() -> None:
    """An embedding feature on one event in five has ~160 rows in an 800-event reference: it keeps collecting
    (through a checkpoint) and is watched once it has 200, from the segment's budget reserved for it."""
    rng = np.random.default_rng(7)

    def rows(n: int, similarity: float) -> list[dict[str, float]]:
        out = _rows(rng, n)
        for row, sampled, x in zip(out, rng.random(n) < 0.2, rng.normal(similarity, 0.05, n), strict=True):
            if sampled:
                row["injection_similarity"] = float(x)
        return out

    monitor = monitor_for("m/chat/t")
    assert feed(monitor, rows(850, 0.3)) == []
    assert (
        "injection_similarity" not in monitor.detectors
        and 100 < len(monitor.collection.pending["injection_similarity"]) < 200
    )
    monitor = pickle.loads(pickle.dumps(monitor))
    assert feed(monitor, rows(100, 0.3)) == [] and "injection_similarity" not in monitor.detectors
    monitor = pickle.loads(pickle.dumps(monitor))
    assert feed(monitor, rows(600, 0.3)) == [] and "injection_similarity" in monitor.detectors
    assert monitor.detector_set.ert == 1e6 * (2 + len(OPTIONAL))  # latency, refusal and every optional feature share it
    change = monitor.events
    found = feed(monitor, rows(2000, 0.4))
    assert found and found[0][1].features[0].feature == "injection_similarity"
    # the onset is counted in the segment's events, not the sampled detector's (which sees one in five)
    assert change - 100 <= found[0][1].onset_event <= found[0][0]


def test_a_batch_fed_at_once_gives_the_same_incidents_and_state_as_one_event_at_a_time() -> None:
    """The worker feeds batches (:meth:`SegmentMonitor.observe_many`): a quiet stretch runs vectorised, and the
    outcomes, onsets, statistics and evidence must equal those of :meth:`SegmentMonitor.observe` one by one."""
    rng = np.random.default_rng(8)
    rows = _rows(rng, 1200) + _rows(rng, 400, latency=6.4) + _rows(rng, 900)
    for row, language in zip(rows, rng.choice(["en", "es", "fr"], len(rows), p=[0.8, 0.15, 0.05]), strict=True):
        row["language"] = str(language)  # type: ignore[assignment]
    one, many = monitor_for("m/chat/t"), monitor_for("m/chat/t")
    expected = [out for row in rows if (out := one.observe(StubEvent(), row))]  # type: ignore[arg-type]
    found = []
    for start in range(0, len(rows), 256):
        found += list(many.observe_many([StubEvent()] * len(rows[start : start + 256]), rows[start : start + 256]))  # type: ignore[list-item]
    assert [type(out).__name__ for out in expected] == ["DriftIncident", "Resolution"]
    assert [out.model_dump(exclude={"detected_at"}) for out in found] == [
        out.model_dump(exclude={"detected_at"}) for out in expected
    ]
    assert many.events == one.events and many.detectors.keys() == one.detectors.keys()
    for name, detector in one.detectors.items():
        assert many.detectors[name].statistic == pytest.approx(detector.statistic, abs=1e-9), name
    sums, batched = one.builder.sums, many.builder.sums  # the also-moved features' means over a cause's span
    assert [at for at, _ in batched.marks] == [at for at, _ in sums.marks] == list(range(128, one.events, 128))
    for (_, marked), (_, expected_mark) in zip(batched.marks, sums.marks, strict=True):
        np.testing.assert_allclose(marked, expected_mark, rtol=1e-12)
    for since in (1, 1000, 1300, one.events):
        means, expected_means = batched.means(since), sums.means(since)
        assert means.keys() == expected_means.keys() and "latency_ms" in means
        for name, (mean, count) in expected_means.items():
            assert means[name] == (pytest.approx(mean, rel=1e-12), count), (since, name)
