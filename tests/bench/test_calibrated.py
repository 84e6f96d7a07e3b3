"""The detection benchmark's calibrated baselines: quiet on the streams they were fitted on, firing on a step."""

import numpy as np
import pytest
from river.drift import ADWIN, PageHinkley

from bench.calibrated import (
    ADWIN_DELTAS,
    adwin_delta,
    bonferroni,
    fitted_p_value,
    page_hinkley_statistic,
    page_hinkley_thresholds,
    reference_ecdf,
    river,
)

EVENTS, STEP, REFERENCE = 4000, 2000, slice(0, 800)


def quiet(seed: int, events: int = EVENTS) -> dict[str, np.ndarray]:
    """A latency-like level with some gaps (NaN = absent) and a rare 0/1 rate."""
    rng = np.random.default_rng(seed)
    level = rng.lognormal(5, 0.3, events)
    level[rng.random(events) < 0.1] = np.nan
    return {"level": level, "rate": (rng.random(events) < 0.02).astype(float)}


def stepped(seed: int, feature: str, factor: float = 1.4) -> dict[str, np.ndarray]:
    """The quiet stream of ``seed`` with ``feature`` stepping up at :data:`STEP`: the level by ``factor``, the rate
    to 15%. Before the step it is that quiet stream, so a detector quiet on it raises no alarm before the step."""
    columns = quiet(seed)
    rng = np.random.default_rng(seed + 1)
    if feature == "level":
        columns["level"][STEP:] *= factor
    else:
        columns["rate"][STEP:] = (rng.random(EVENTS - STEP) < 0.15).astype(float)
    return columns


CALIBRATION = [quiet(seed) for seed in range(3)]


def test_the_page_hinkley_statistic_is_rivers() -> None:
    """A threshold just below the statistic's maximum makes River's own detector fire first exactly there."""
    values = CALIBRATION[0]["level"][~np.isnan(CALIBRATION[0]["level"])]
    statistic = page_hinkley_statistic(values)
    detector = PageHinkley(threshold=float(statistic.max()) * (1 - 1e-4))
    first = next(i for i, value in enumerate(values) if detector.update(value) or detector.drift_detected)
    assert first == int(np.argmax(statistic))


@pytest.mark.parametrize("feature", ["level", "rate"])
def test_page_hinkley_thresholds_are_quiet_on_their_streams_and_fire_on_a_step(feature: str) -> None:
    thresholds = page_hinkley_thresholds(CALIBRATION)
    detect = lambda name: PageHinkley(threshold=thresholds[name])  # noqa: E731
    assert all(len(river(detect, columns, 0, None)) == 0 for columns in CALIBRATION)
    found = river(detect, stepped(0, feature), 0, None)
    assert len(found) and found[0] >= STEP


@pytest.mark.parametrize("feature", ["level", "rate"])
def test_the_adwin_delta_is_quiet_on_its_streams_and_fires_on_a_step(feature: str) -> None:
    ranks = [reference_ecdf(columns, REFERENCE) for columns in CALIBRATION]
    delta = adwin_delta(ranks)
    assert not any(len(river(lambda _: ADWIN(delta=delta), columns, 0, None)) for columns in ranks)
    found = river(lambda _: ADWIN(delta=delta), reference_ecdf(stepped(0, feature), REFERENCE), 0, None)
    assert len(found) and found[0] >= STEP


def test_the_one_pass_adwin_search_finds_what_checking_every_delta_on_every_stream_finds() -> None:
    """Calibration streams where the sensitive deltas fire (a small step in the second): the search's delta is the
    largest on the grid that is quiet on all of them."""
    ranks = [reference_ecdf(columns, REFERENCE) for columns in (quiet(0), stepped(1, "level", 1.1), quiet(2))]
    quiet_at = [d for d in ADWIN_DELTAS if not any(len(river(lambda _, d=d: ADWIN(delta=d), c, 0, 0)) for c in ranks)]
    assert quiet_at[0] < ADWIN_DELTAS[0], "the sensitive end of the grid fires"
    assert adwin_delta(ranks) == quiet_at[0]


def test_adwin_delta_refuses_a_grid_that_never_goes_quiet() -> None:
    shifting = {"level": np.r_[np.zeros(1000), np.ones(1000)]}
    with pytest.raises(ValueError, match="every delta"):
        adwin_delta([shifting], deltas=(0.1, 0.01))


def test_the_fitted_p_value_is_quiet_on_its_windows_and_drops_degenerate_columns() -> None:
    windows = [np.array([[0.2, 0.0, np.nan], [0.03, 0.5, 0.4]]), np.array([[0.6, 0.0, 0.01]])]
    threshold, kept = fitted_p_value(windows)
    assert threshold == 0.01 and kept.tolist() == [True, False, True]
    assert not any((p[:, kept] < threshold).any() for p in windows)
    assert (np.array([[0.009, 0.9, 0.5]])[:, kept] < threshold).any()


def test_bonferroni_spends_the_budget_across_windows_and_columns() -> None:
    """One false alarm per 1M events, 500-event windows, 20 columns: 1/2000 per window, 1/40000 per column."""
    assert bonferroni(1e-6, 500, 20) == pytest.approx(2.5e-5)
