"""A rate detector's null is pooled from the quiet events it sees: recalibrated as they double, so a small rise is
found sooner than against the reference alone, while a rise's events mostly do not join."""

import copy
import pickle

import numpy as np

from monitor.detector import Level, alarms
from monitor.detectors import POOLED_REFERENCES, calibrated

ERT, WARNING_ERT = 2e7, 2e4
"""A segment's share of the service budget for one of its rates (the defaults: ERT 10⁶ over about 20 detectors)."""


def _refusals(rng: np.random.Generator, n: int, rate: float = 0.009) -> np.ndarray:
    return (rng.random(n) < rate).astype(float)


def _reference() -> np.ndarray:
    """800 events with 7 refusals, the quiet rate's usual count."""
    reference = np.zeros(800)
    reference[::115] = 1.0
    return reference


def _delay(detector, rng: np.random.Generator) -> int:
    """Events until ``detector`` (a copy) alarms on a rise of refusals from 0.9% to 5.9% (3,000: none)."""
    found = alarms(copy.deepcopy(detector), _refusals(rng, 3000, 0.059), limit=1)
    return found[0] if found else 3000


def test_quiet_events_tighten_a_rate_null_and_a_small_rise_is_found_sooner() -> None:
    pooled = calibrated("refusal", _reference(), ert=ERT, warning_ert=WARNING_ERT)
    fixed = copy.deepcopy(pooled)
    fixed.null = None  # the reference's null alone, as before nulls were pooled
    quiet = _refusals(np.random.default_rng(1), 7000)
    assert alarms(pooled, quiet) == [] and alarms(fixed, quiet) == []
    assert pooled.null is not None and pooled.null.events >= 6400 and pooled.null.due == 12_800
    assert pooled.offsets[0] > fixed.offsets[0]  # a lower null rate: each quiet event takes less off
    delays = {
        name: np.median([_delay(detector, np.random.default_rng(seed)) for seed in range(20)])
        for name, detector in {"pooled": pooled, "fixed": fixed}.items()
    }
    assert delays["pooled"] < 0.8 * delays["fixed"], delays


def test_a_rising_rate_mostly_stays_out_of_its_null() -> None:
    """Refusals rising from 0.9% to 5.9% for 1,500 events: at most a fifth of them join the null (those before the
    statistic lifts, and its dips), so the rise is not learned as quiet."""
    detector = calibrated("refusal", _reference(), ert=ERT, warning_ert=WARNING_ERT)
    levels = [detector.update(x) for x in _refusals(np.random.default_rng(2), 1500, 0.059)]
    assert Level.DRIFT in levels
    assert detector.null is not None and detector.null.events - 800 < 300 and detector.null.due == 1600


def test_pooling_stops_at_its_limit() -> None:
    detector = calibrated("refusal", _reference(), ert=ERT, warning_ert=WARNING_ERT)
    alarms(detector, _refusals(np.random.default_rng(3), POOLED_REFERENCES * 1000))
    assert detector.null is not None and detector.null.due is None
    assert detector.null.events >= POOLED_REFERENCES * 800


def test_a_rate_checkpointed_before_nulls_were_pooled_keeps_its_reference_null() -> None:
    detector = calibrated("refusal", _reference(), ert=ERT, warning_ert=WARNING_ERT)
    del detector.null  # a pickle of that code has no such attribute
    restored = pickle.loads(pickle.dumps(detector))
    threshold = restored.threshold
    assert alarms(restored, _refusals(np.random.default_rng(4), 5000)) == []
    assert restored.null is None and restored.threshold == threshold


def test_a_detector_pickled_mid_pool_resumes_as_if_it_never_stopped() -> None:
    """A checkpoint between recalibrations (a worker restart): the restored detector pools, recalibrates and alarms
    as the one that ran on, and shares no null with it."""
    running = calibrated("refusal", _reference(), ert=ERT, warning_ert=WARNING_ERT)
    rng = np.random.default_rng(5)
    alarms(running, _refusals(rng, 1200))
    restored = pickle.loads(pickle.dumps(running))
    rest = np.concatenate([_refusals(rng, 4000), _refusals(rng, 1500, 0.059)])
    assert alarms(restored, rest) == alarms(running, rest) != []
    assert restored.null == running.null and restored.null is not running.null and restored.null.events > 3200
    assert (restored.threshold, restored.sums) == (running.threshold, running.sums)
