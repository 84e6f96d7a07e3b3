"""The detection benchmark's baselines calibrated to driftloop's false-alarm budget on quiet streams.

Each baseline runs one detector per feature and alarms when any fires, as driftloop's segment does. Its knob is set
on quiet streams of seeds disjoint from the evaluation seeds, to the most sensitive setting that raised no alarm on
them (the least threshold, the largest ``delta``):

- **River PageHinkley**: one threshold per feature. Its statistic does not depend on the threshold until the first
  alarm, so the zero-alarm threshold is the largest statistic on the calibration streams
  (:func:`page_hinkley_statistic`, vectorised). Each of the F features gets 1/F of the budget, as driftloop splits its
  ERT across its detectors: the caller calibrates on F times the budget's span.
- **River ADWIN**: one ``delta`` for every feature, on each feature's mid-rank in its stream's reference
  (:func:`reference_ecdf`): ADWIN's bound assumes values in [0, 1]; on raw values one ``delta`` cannot fit lengths
  in the thousands and 0/1 rates alike (raw prompt lengths still cut at 1e-30 on 25,000 quiet events).
  :func:`adwin_delta` walks a log grid from the most sensitive ``delta``.
- **Evidently, any column**: per-column p-values of its default tests, alarm when one is below a threshold, either
  Bonferroni's share of the budget (:func:`bonferroni`, no calibration) or one threshold for every column,
  fitted: the least p-value on the calibration windows, the columns whose test gave p = 0 there dropped
  (:func:`fitted_p_value`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from river.base import DriftDetector
from river.drift import ADWIN, PageHinkley
from scipy.signal import lfilter

ADWIN_DELTAS = tuple(10.0**-k for k in range(1, 31))
"""The log grid :func:`adwin_delta` searches, most sensitive first."""
MARGIN = 1e-6
"""Relative margin over the largest PageHinkley statistic: rounding of the vectorised running mean against River's."""


def river(
    factory: Callable[[str], DriftDetector], columns: dict[str, np.ndarray], start: int, stop: int | None
) -> np.ndarray:
    """Events at or after ``start`` where any feature's River detector (``factory(feature)``) flags drift, NaNs
    skipped; stops at the first at or after ``stop``, when given."""
    matrix = np.stack(list(columns.values()), axis=1)
    detectors = [factory(name) for name in columns]
    found = []
    for i, row in enumerate(matrix.tolist()):
        fired = False
        for detector, value in zip(detectors, row, strict=True):
            if value == value:  # not NaN
                detector.update(value)
                fired |= detector.drift_detected
        if fired and i >= start:
            found.append(i)
            if stop is not None and i >= stop:
                break
    return np.array(found, dtype=int)


def page_hinkley_statistic(values: np.ndarray, detector: PageHinkley | None = None) -> np.ndarray:
    """After each of ``values``, the larger of River ``PageHinkley``'s two tests (``detector``'s settings; 0 before
    its ``min_instances``), as they are while it has not fired: an alarm is a statistic above the threshold.

    >>> statistic = page_hinkley_statistic(np.r_[np.zeros(100), np.ones(100)])
    >>> int(np.argmax(statistic)), round(float(statistic.max()), 1)
    (199, 68.2)
    """
    detector = detector or PageHinkley()
    if not len(values):
        return np.zeros(0)
    deviation = values - np.cumsum(values) / np.arange(1, len(values) + 1)
    up = lfilter([1.0], [1.0, -detector.alpha], deviation - detector.delta)
    down = lfilter([1.0], [1.0, -detector.alpha], deviation + detector.delta)
    statistic = np.maximum(up - np.minimum.accumulate(up), np.maximum.accumulate(np.maximum(down, -1.0)) - down)
    statistic[: detector.min_instances - 1] = 0.0
    return statistic


def page_hinkley_thresholds(streams: Iterable[dict[str, np.ndarray]]) -> dict[str, float]:
    """Per feature, the least PageHinkley threshold that fires nowhere on ``streams`` (feature arrays, NaN = absent)."""
    largest: dict[str, float] = {}
    for columns in streams:
        for name, values in columns.items():
            statistic = page_hinkley_statistic(values[~np.isnan(values)])
            largest[name] = max(largest.get(name, 0.0), float(statistic.max(initial=0.0)))
    return {name: value * (1 + MARGIN) + MARGIN for name, value in largest.items()}


def reference_ecdf(columns: dict[str, np.ndarray], reference: slice) -> dict[str, np.ndarray]:
    """Each value as its mid-rank among the feature's ``reference`` values, in [0, 1] (NaN stays NaN): the share
    below it plus half the share equal to it, so a rare 0/1 rate still moves by half the range.

    >>> reference_ecdf({"rate": np.array([0.0, 0.0, 0.0, 1.0, 1.0, np.nan])}, slice(0, 4))["rate"]
    array([0.375, 0.375, 0.375, 0.875, 0.875,   nan])
    """
    mapped = {}
    for name, values in columns.items():
        known = np.sort(values[reference][~np.isnan(values[reference])])
        ranks = np.searchsorted(known, values, side="left") + np.searchsorted(known, values, side="right")
        mapped[name] = np.where(np.isnan(values), np.nan, ranks / (2 * max(len(known), 1)))
    return mapped


def adwin_delta(streams: Iterable[dict[str, np.ndarray]], deltas: tuple[float, ...] = ADWIN_DELTAS) -> float:
    """The largest of ``deltas`` under which no feature's ``ADWIN`` fires on ``streams`` (feature arrays already
    mapped by :func:`reference_ecdf`). One pass: a stream moves the candidate down the grid until it stays quiet,
    which keeps the earlier streams quiet (without a cut ADWIN's window is the same at any ``delta``, its bound wider
    at a smaller one). Raises ``ValueError`` when the grid's last ``delta`` still fires."""
    at = 0
    for columns in streams:
        while len(river(lambda _, delta=deltas[at]: ADWIN(delta=delta), columns, 0, 0)):
            at += 1
            if at == len(deltas):
                raise ValueError(f"ADWIN fires on a quiet stream at every delta down to {deltas[-1]:g}")
    return deltas[at]


def bonferroni(budget: float, window: int, columns: int) -> float:
    """The per-column p-value threshold that spends ``budget`` (false alarms per event) on windows of ``window``
    events across ``columns`` tests: a window's family-wise error rate of ``budget * window``, split evenly."""
    return budget * window / columns


def fitted_p_value(p_values: Iterable[np.ndarray]) -> tuple[float, np.ndarray]:
    """The p-value threshold (alarm when a column's p-value is below it) that fires on none of the calibration
    windows (rows of ``p_values``, one column per feature, NaN = no test), and which columns it applies to: those
    whose test never gave p = 0 on them (Evidently's chi-square on a value absent from the reference), which would
    leave no threshold for the others. Their least nonzero p-value."""
    least = np.nanmin(np.vstack(list(p_values)), axis=0)
    kept = ~(least == 0)
    return float(np.nanmin(least[kept], initial=np.inf)), kept
