"""Calibration holds its false-alarm rate on null streams, within Poisson tolerance."""

import numpy as np
import pytest

from core.allocator import MMAP_THRESHOLD
from monitor import calibration
from monitor.calibration import detector_ert
from monitor.detector import alarms
from monitor.detectors import _bounded_rate_calibration, calibrated
from tests.factories import poisson_band

NULL_EVENTS = 1_000_000


@pytest.mark.parametrize(
    "draw",
    [
        pytest.param(lambda rng, n: rng.lognormal(6, 0.8, n), id="heavy-tailed"),
        pytest.param(lambda rng, n: (rng.random(n) < 0.05).astype(float), id="rate"),
        pytest.param(lambda rng, n: (rng.random(n) < 0.3).astype(float), id="common-rate"),  # with a fall channel
        pytest.param(lambda rng, n: rng.choice([0.0, 1.0, 2.0, 7.0], n, p=[0.7, 0.2, 0.07, 0.03]), id="discrete"),
    ],
)
def test_false_alarms_on_a_null_stream_match_the_target_ert(draw) -> None:
    """ERT 2,000 over 1,000,000 null events: 500 false alarms expected (restarting after each)."""
    rng = np.random.default_rng(11)
    ert = 2000
    detector = calibrated("x", draw(rng, 20_000), ert=ert, warning_ert=ert / 10, seed=3)
    count = len(alarms(detector, draw(rng, NULL_EVENTS)))
    low, high = poisson_band(NULL_EVENTS / ert)
    # the guard against the reference's estimation error makes alarms rarer, never more frequent
    assert 0.4 * low < count < high


def test_a_rate_never_seen_in_its_reference_is_guarded_and_a_rise_is_still_found() -> None:
    """Zero events of a 1% rate in 300 (one reference in 20 at that rate): the null is the rate's upper bound, not
    0.5/n, so a long Bernoulli(0.01) null stays quiet; a rise to 5% still alarms within about 600 events."""
    rng = np.random.default_rng(12)
    ert = 1_000_000
    detector = calibrated("refusal", np.zeros(300), ert=ert, warning_ert=ert / 1000, miss=0.01 / 20)
    assert len(alarms(detector, (rng.random(2 * NULL_EVENTS) < 0.01).astype(float))) <= poisson_band(2.0)[1]
    found = alarms(detector, (rng.random(NULL_EVENTS // 10) < 0.05).astype(float))
    assert len(found) > 100 and np.mean(np.diff([-1, *found])) < 1000


def test_the_service_budget_is_split_across_detectors() -> None:
    assert detector_ert(1_000_000, 20) == 20_000_000
    with pytest.raises(ValueError):
        detector_ert(1_000_000, 0)


def test_a_rate_calibration_is_simulated_once_and_each_detector_owns_its_channels() -> None:
    """Two segments' rates with the same hits in the same reference length get one simulation: the same levels
    and channels as a fresh one, in arrays of their own (a detector changing its channels changes no other's)."""
    reference = np.zeros(800)
    reference[:7] = 1.0
    _bounded_rate_calibration.cache_clear()
    fresh = calibrated("refusal", reference, ert=1e6, warning_ert=1e4)
    again = calibrated("refusal", np.roll(reference, 400), ert=1e6, warning_ert=1e4)
    assert _bounded_rate_calibration.cache_info().hits == 1
    assert (again.warning, again.threshold) == (fresh.warning, fresh.threshold)
    assert again.slopes.tolist() == fresh.slopes.tolist() and again.offsets.tolist() == fresh.offsets.tolist()
    again.slopes *= 2
    assert not np.shares_memory(again.slopes, fresh.slopes)
    assert calibrated("refusal", reference, ert=1e6, warning_ert=1e4).slopes.tolist() == fresh.slopes.tolist()
    other = calibrated("refusal", np.where(np.arange(800) < 8, 1.0, 0.0), ert=1e6, warning_ert=1e4)
    assert other.threshold != fresh.threshold  # another count of hits is simulated anew


@pytest.mark.parametrize("steps", [20_000, 100_001])  # long odd rows: one path a batch
def test_levels_do_not_depend_on_how_many_paths_are_simulated_at_once(monkeypatch, steps: int) -> None:
    held_out = (np.random.default_rng(2).random(3_000) < 0.003).astype(float)
    slopes, offsets = np.array([1.5, 2.0]), np.array([-0.004, -0.006])

    def levels(batch_values: int) -> tuple[float, ...]:
        monkeypatch.setattr(calibration, "BATCH_VALUES", batch_values)
        return calibration.calibrate(held_out, slopes, offsets, (1e4, 1e5), 0.0, seed=3, steps=steps)

    assert levels(16 * calibration.STEPS) == levels(calibration.BATCH_VALUES)


def test_a_batch_of_simulated_values_stays_under_the_workers_mmap_threshold() -> None:
    assert calibration.BATCH_VALUES * np.dtype(np.float64).itemsize < MMAP_THRESHOLD


def _rises(p: float) -> tuple[np.ndarray, np.ndarray]:
    """The channels of a rate ``p``'s Bernoulli CUSUM for a doubling and a five-fold rise (at most (1 + p) / 2)."""
    targets = np.minimum([2 * p, 5 * p], (1 + p) / 2)
    offsets = np.log((1 - targets) / (1 - p))
    return np.log(targets / p) - offsets, offsets


@pytest.mark.parametrize(("p", "steps", "stride"), [(0.02, 20_000, 1), (0.3, 20_000, 1), (0.0047, 42_553, 2)])
def test_a_stream_simulated_hit_by_hit_has_the_running_peaks_of_one_simulated_step_by_step(p, steps, stride) -> None:
    """The same streams of 0s and 1s, given as the steps of their 1s: the kept running peaks match to rounding."""
    rng = np.random.default_rng(5)
    stream = (rng.random((6, steps)) < p).astype(float)
    slopes, offsets = _rises(p)
    channels = [calibration.cusum(s * stream + o) for s, o in zip(slopes, offsets, strict=True)]
    dense = np.maximum.accumulate(np.maximum.reduce(channels), axis=-1)[:, stride - 1 :: stride][:, : steps // stride]
    hits = [np.flatnonzero(row) for row in stream]
    width = max(len(row) for row in hits) + 1
    at = np.stack([np.concatenate([row, steps + np.arange(width - len(row))]) for row in hits])  # padded past the end
    assert np.allclose(calibration.hit_peaks(at, slopes, offsets, steps, stride), dense, rtol=0, atol=1e-9)


def test_a_rare_rate_holds_its_ert_when_its_simulation_is_not_a_whole_number_of_strides() -> None:
    """A rate of 0.47% is simulated over 42,553 steps, kept every 2nd: a path that never reached a level is no
    alarm (it was counted as one at step 42,552, which put the ERT 1e5 level where the run length is 2.4e5).
    The mean run length to the calibrated levels, measured on 3,000 fresh Bernoulli streams (exposure over
    crossings, as calibration does), is near its target."""
    p, ert = 0.0047, 100_000
    slopes, offsets = _rises(p)
    levels = calibration.calibrate_rises(p, slopes, offsets, (ert, 3 * ert), seed=0, steps=42_553)
    gaps = np.random.default_rng(9).geometric(p, size=(3_000, 5_000))  # a million steps a stream on average
    jumps = slopes + offsets  # after each hit (the step-by-step equivalence is the test above)
    statistic = np.maximum.reduce(
        [calibration.cusum(a + o * (gaps - 1), start=-a) + a for a, o in zip(jumps, offsets, strict=True)]
    )
    steps = np.cumsum(gaps, axis=-1)
    for level, target in zip(levels, (ert, 3 * ert), strict=True):
        crossed = statistic >= level
        first = crossed.argmax(axis=-1)
        run_lengths = np.where(crossed.any(axis=-1), steps[np.arange(len(gaps)), first], steps[:, -1])
        assert 0.8 * target < run_lengths.sum() / crossed.any(axis=-1).sum() < 1.4 * target


def test_the_compiled_running_peaks_are_those_of_the_cusums_numpy_computes() -> None:
    """:func:`running_peaks` (one compiled pass) gives the running maximum of the channels' CUSUMs as
    :func:`cusum` computes them over whole arrays, to rounding."""
    rng = np.random.default_rng(2)
    values = rng.standard_t(3, size=(5, 4_000))
    slopes, intercepts = np.array([0.5, -0.5, 1.5, -1.5]), np.array([-0.1, -0.1, -1.2, -1.2])
    peaks = np.empty_like(values)
    calibration.running_peaks(values, slopes, intercepts, peaks)
    channels = [calibration.cusum(s * values + b) for s, b in zip(slopes, intercepts, strict=True)]
    assert np.allclose(peaks, np.maximum.accumulate(np.maximum.reduce(channels), axis=-1), rtol=1e-12, atol=1e-9)
    assert peaks[:, -1].min() > 0
