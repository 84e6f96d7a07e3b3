"""Every detector a segment can be given keeps the :class:`monitor.detector.Detector` contract: calibrated false
alarms on reference-like data, a planted shift caught, its state through a pickle, a batch equal to one event at a
time. Detectors are made through the input registry (:data:`monitor.inputs.INPUTS`), as a segment makes them."""

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from monitor.calibration import SEGMENT_MISS
from monitor.detector import Detector, Level, alarms
from monitor.inputs import INPUTS, WINDOW_EVENTS, Budget
from monitor.null import NullDetector
from tests.monitor.test_calibration import poisson_band
from tests.monitor.test_windows import CENTRES, LANGUAGES, topics

ERT = 1000
NULL_EVENTS = 100_000
BUDGET = Budget(ert=ERT, warning_ert=ERT / 10, miss=SEGMENT_MISS, seed=0)


@dataclass(frozen=True)
class Case:
    """A detector kind: the registered input it is made for, how its data is drawn, quiet or shifted."""

    kind: str
    input: str
    reference_events: int
    draw: Callable[[np.random.Generator, int, bool], Any]
    """rng, events, shifted → that many values."""
    dead: int = 0
    """Events after a restart before the detector can alarm again (a windowed test refills its window)."""
    rel: float = 1e-9
    """Relative tolerance of a batch's statistics against those of one event at a time."""
    quiet_seed: int = 5
    """Seed of the batch test's reference-like stretch, one under the drift level for its first 300 events (at an ERT
    of 1,000 about a quarter of stretches reach it sooner)."""

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.input}"

    def detector(self) -> Detector:
        if self.kind == "null":
            return NullDetector(self.input)
        spec = INPUTS[self.input]
        reference = self.draw(np.random.default_rng(1), self.reference_events, False)
        fit = spec.calibrator(self.input, spec.column(list(reference)), BUDGET)
        assert fit is not None
        return fit()


def _profile(rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
    spread = 0.6 if shifted else 0.3
    return np.stack([rng.lognormal(6, spread, n), rng.poisson(3, n), rng.random(n)], axis=1).astype(np.float32)


def _cost(rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
    """USD of events at gpt-4o-mini's price; shifted: replies 1.5× as long."""
    prompt, completion = rng.lognormal([[5.5], [5.0 + 0.4 * shifted]], [[0.8], [0.7]], (2, n))
    return (prompt * 0.15 + completion * 0.60) / 1e6


def _judge_scores(rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
    """A judge's 1-5 scores; shifted: a quality drop. On five values the CUSUM's false alarms come at a third to
    three quarters of the calibrated rate (the guard and the lattice of the watched values: conservative)."""
    shares = [0.15, 0.2, 0.25, 0.25, 0.15] if shifted else [0.05, 0.1, 0.2, 0.35, 0.3]
    return rng.choice(np.arange(1.0, 6.0), n, p=shares)


def _injection_scores(rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
    """A mostly-zero attack score: weak matches (1/3) in 2% of prompts, strong ones (2/3, 1) in 0.4%; shifted: 5%
    more strong ones (the weak ones' rate barely moves: a strong match's rate is what is watched)."""
    strong = 0.004 + 0.05 * shifted
    return rng.choice([0.0, 1 / 3, 2 / 3, 1.0], n, p=[0.976 - 0.05 * shifted, 0.02, strong / 2, strong / 2])


def _attack_probabilities(rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
    """A learned attack probability: benign prompts low (Beta(1, 30)); shifted: 5% attacks scored high (Beta(8, 2)),
    the bulk where it was."""
    attack = rng.random(n) < 0.05 * shifted
    return np.where(attack, rng.beta(8, 2, n), rng.beta(1, 30, n))


CASES = [
    Case("cusum", "latency_ms", 4000, lambda rng, n, shifted: rng.lognormal(6.3 if shifted else 6.0, 0.3, n)),
    Case(
        "bernoulli-cusum", "refusal", 4000, lambda rng, n, shifted: (rng.random(n) < (0.15 if shifted else 0.05)) * 1.0
    ),
    Case(
        "mmd",
        "prompt_embedding",
        800,
        lambda rng, n, shifted: topics(rng, n, CENTRES, [0.25, 0.25, 0.2, 0.3] if shifted else [0.4, 0.3, 0.3, 0.0]),
        dead=WINDOW_EVENTS,
        rel=1e-5,
    ),
    Case(
        "hellinger",
        "language",
        800,
        lambda rng, n, shifted: rng.choice(LANGUAGES, n, p=[0.7, 0.1, 0.2] if shifted else [0.7, 0.25, 0.05]).tolist(),
        dead=WINDOW_EVENTS,
        rel=1e-5,
    ),
    Case("hellinger-profile", "feature_profile", 800, _profile, dead=WINDOW_EVENTS, rel=1e-5),
    Case("null", "latency_ms", 0, lambda rng, n, shifted: rng.lognormal(7.0 if shifted else 6.0, 0.3, n)),
    Case("cusum", "cost_usd", 4000, _cost, quiet_seed=6),
    Case("bernoulli-cusum", "injection_score", 4000, _injection_scores),
    Case("bernoulli-cusum", "injection_learned", 4000, _attack_probabilities),
    Case("cusum", "judge_score", 800, _judge_scores, quiet_seed=6),
]
_made: dict[str, bytes] = {}


def made(case: Case) -> Detector:
    """A fresh copy of the case's detector (calibrated once per run)."""
    if case.id not in _made:
        _made[case.id] = pickle.dumps(case.detector())
    return pickle.loads(_made[case.id])


def test_a_mostly_zero_score_is_watched_above_its_usual_nonzero_level() -> None:
    detector = made(next(case for case in CASES if case.input == "injection_score"))
    assert detector.watch(np.array([0.0, 1 / 3, 2 / 3, 1.0])).tolist() == [0.0, 0.0, 1.0, 1.0]


def test_an_attack_probability_is_watched_above_its_reference_top() -> None:
    """The tail of ``injection_learned``: the reference's top 1% and above count, the bulk does not (a 5% wave is a
    several-fold rise of that rate, not a small shift of the mean)."""
    case = next(case for case in CASES if case.input == "injection_learned")
    reference = case.draw(np.random.default_rng(1), case.reference_events, False)
    top = float(np.quantile(reference, 0.99))
    assert made(case).watch(np.array([0.0, top * 0.9, top * 1.01, 0.9])).tolist() == [0.0, 0.0, 1.0, 1.0]


def test_every_registered_input_is_covered() -> None:
    covered = {INPUTS[case.input].calibrator for case in CASES}
    assert {spec.calibrator for spec in INPUTS.values()} <= covered
    assert {case.kind for case in CASES} == {made(case).kind for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_a_detector_keeps_the_contract(case: Case) -> None:
    assert isinstance(made(case), Detector)
    assert made(case).level is Level.QUIET and made(case).warning <= made(case).threshold


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_false_alarms_on_reference_like_data_stay_within_the_calibrated_ert(case: Case) -> None:
    """ERT 1,000 over 100,000 reference-like events, restarting after each alarm: at most the Poisson band's top
    (the guard against the reference's own error makes alarms rarer, never more frequent)."""
    detector = made(case)
    count = len(alarms(detector, case.draw(np.random.default_rng(2), NULL_EVENTS, False)))
    if case.kind == "null":
        assert count == 0
        return
    low, high = poisson_band(NULL_EVENTS / (ERT + case.dead))
    assert 0.4 * low < count < high


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_a_planted_shift_is_caught(case: Case) -> None:
    """2,000 reference-like events, then a shift at event 2,000: the drift level within 1,000 events, the onset
    near the change (a null detector stays quiet)."""
    detector = made(case)
    rng = np.random.default_rng(3)
    for i, x in enumerate(case.draw(rng, 2000, False)):
        detector.update(x, at=i)
    levels = []
    for i, x in enumerate(case.draw(rng, 1000, True), start=2000):
        levels.append(detector.update(x, at=i))
        if levels[-1] is Level.DRIFT:
            break
    if case.kind == "null":
        assert set(levels) == {Level.QUIET}
        return
    assert levels[-1] is Level.DRIFT and 2000 - WINDOW_EVENTS <= detector.onset <= i


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_a_pickled_detector_resumes_where_it_was(case: Case) -> None:
    straight = made(case)
    values = case.draw(np.random.default_rng(4), 600, True)
    for i, x in enumerate(values[:300]):
        straight.update(x, at=i)
    resumed = pickle.loads(pickle.dumps(straight))
    for i, x in enumerate(values[300:], start=300):
        assert resumed.update(x, at=i) is straight.update(x, at=i)
    assert (resumed.statistic, resumed.onset, resumed.level) == (straight.statistic, straight.onset, straight.level)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_a_batch_equals_one_event_at_a_time(case: Case) -> None:
    """:meth:`trajectory` then :meth:`advance` on a stretch before the first drift (as a segment batches) equal
    :meth:`update` event by event (φ rows of a batch and of one vector come from different BLAS kernels: windowed
    statistics agree to rel 1e-5; a CUSUM's batch sums in another order)."""
    one, many = made(case), made(case)
    values = case.draw(np.random.default_rng(case.quiet_seed), 700, False)
    clock = 10 + np.arange(len(values))
    statistics = []
    for x, at in zip(values, clock, strict=True):
        if one.update(x, at=int(at)) is Level.DRIFT:
            break
        statistics.append(one.statistic)
    quiet = len(statistics)
    assert quiet > 300
    for start, stop in ((0, 150), (150, quiet - 50), (quiet - 50, quiet)):
        assert many.trajectory(values[start:stop]) == pytest.approx(statistics[start:stop], rel=case.rel, abs=1e-9)
        many.advance(values[start:stop], at=clock[start:stop])
    if quiet < len(values):
        many.update(values[quiet], at=int(clock[quiet]))
    assert (many.onset, many.level) == (one.onset, one.level)
    assert many.statistic == pytest.approx(one.statistic, rel=case.rel, abs=1e-9)
