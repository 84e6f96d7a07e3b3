"""CUSUM thresholds calibrated to a target expected run time between false alarms (ERT), by bootstrap.

The approach of Cobb et al. 2021 (arXiv 2108.00883) for online detectors: simulate the detector on
bootstrap resamples of *held-out* reference data (data the detector's transform was not fitted on),
and choose the threshold at which the run length to a false alarm has mean ERT. A CUSUM restarted at
zero has a run length that is close to geometric, and its mean grows exponentially with the threshold
(Siegmund 1985: ARL0 ≈ C·exp(θ*·h)), so thresholds whose ERT the simulation can reach (up to about a
third of the simulated length) are interpolated, and larger ERTs extrapolated along the fitted line
log ARL = a + b·h of the upper half of that range. This keeps calibration to seconds for ERTs of 10^8.

The reference itself is a sample: its estimated centre is off by about σ/√n, which shortens the true
run length. Following Gandy & Kvaløy 2013 (guaranteed conditional performance), the simulated values
are moved by ``guard`` = z₀.₉·σ/√n towards each channel's alarm, so the ERT holds for ~90% of references
(:data:`GUARD_MISS`). For a scalar that is enough: the normal scores' mean is off by a few hundredths of σ
and none of the benchmark's scalar CUSUMs raised a false alarm in 10⁶ quiet events, whereas splitting the
10% across a segment's 21 detectors (z₀.₉₉₅) delayed the latency alarm by 70% in the quick benchmark and
missed a quarter of its length shifts. A rare rate is another matter: a reference without a single
refusal puts the rate 10× too low. Rates (:mod:`monitor.detectors`) are guarded per segment: :data:`SEGMENT_MISS`
split across its detectors.

>>> rng = np.random.default_rng(0)
>>> held_out = rng.normal(size=4000)
>>> slopes, offsets = np.array([1.0, -1.0]), np.array([-0.25, -0.25])
>>> warning, drift = calibrate(held_out, slopes, offsets, erts=(500, 10**7), guard=0.0, seed=1)
>>> bool(4 < warning < drift), bool(25 < drift < 40)
(True, True)
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy.special import ndtri

PATHS = 48
STEPS = 20_000
GRID = 48
MIN_ALARMS = 8
GUARD_MISS = 0.1
"""Share of references whose error a scalar detector's guard does not cover."""
BATCH_VALUES = 4 * STEPS
"""Values a simulation draws at once: its arrays (8 bytes a value at most) stay under the worker's 1 MiB mmap threshold
(:mod:`core.allocator`), so they are reused from the heap instead of mapped and faulted in afresh each time
(a calibration of 4 channels: 48 ms, 59 with the threshold, against 55 and 111 at 16 paths a batch)."""
SEGMENT_MISS = 0.01
"""Chance that a segment's reference underestimates any of its rates (their ERT not held), split across them."""


def detector_ert(service_ert: float, detectors: int) -> float:
    """ERT of each of ``detectors`` detectors so that their false alarms together come once per ``service_ert`` events.

    By the union bound the alarm rates add up. Segments do not multiply the count: each event updates the
    detectors of one segment only, so per service event the rates of all segments add up to one segment's.

    >>> detector_ert(1_000_000, 12)
    12000000.0
    """
    if service_ert <= 1 or detectors < 1:
        raise ValueError(f"need service_ert > 1 and detectors >= 1, got {service_ert}, {detectors}")
    return float(service_ert) * detectors


def guard(values: np.ndarray, miss: float) -> float:
    """Shift that covers the error of a reference mean estimated from ``values`` in all but a share ``miss`` of
    references (see the module docstring).

    >>> round(guard(np.array([0.0, 2.0] * 50), miss=0.1), 3)  # z₀.₉ · 1 / √100
    0.128
    """
    return float(ndtri(1 - miss)) * float(np.std(values)) / math.sqrt(max(len(values), 1))


def cusum(increments: np.ndarray, start: np.ndarray | float = 0.0) -> np.ndarray:
    """CUSUM statistic S_t = max(0, S_{t-1} + x_t) from S_0 = ``start`` along the last axis, without a Python loop.

    S_t = C_t − min(−S_0, min_{s≤t} C_s) where C is the cumulative sum.

    >>> cusum(np.array([1.0, -3.0, 2.0, 0.5])).tolist()
    [1.0, 0.0, 2.0, 2.5]
    >>> cusum(np.array([1.0, -3.0]), start=5.0).tolist()
    [6.0, 3.0]
    """
    total = np.cumsum(increments, axis=-1)
    floor = -np.asarray(start, dtype=float)[..., None] if np.ndim(start) else -float(start)
    return total - np.minimum(np.minimum.accumulate(total, axis=-1), floor)


def calibrate(
    held_out: np.ndarray,
    slopes: np.ndarray,
    offsets: np.ndarray,
    erts: tuple[float, ...],
    guard: float,
    seed: int = 0,
    paths: int = PATHS,
    steps: int = STEPS,
) -> tuple[float, ...]:
    """Thresholds at which the detector's run length to a false alarm on bootstrap resamples of ``held_out``
    has mean ``erts[i]``; one simulation (``paths`` resampled streams of ``steps`` events) serves all of them."""
    rng = np.random.default_rng(seed)
    slopes = np.asarray(slopes, dtype=float)
    intercepts = slopes * np.where(slopes >= 0, guard, -guard) + offsets  # s·(x ± guard) + o = s·x + intercept
    peaks = np.empty((paths, steps))
    batch = max(1, BATCH_VALUES // steps)
    held_out = held_out.astype(np.float32)
    for start in range(0, paths, batch):
        values = rng.choice(held_out, size=(min(batch, paths - start), steps))
        running_peaks(values, slopes, intercepts, peaks[start : start + len(values)])
    return run_length_thresholds(peaks, 1, erts)


@numba.njit(cache=True)
def running_peaks(values: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray, peaks: np.ndarray) -> None:
    """``peaks[p, t]``: the largest value, over steps up to ``t`` of path ``p``, of the largest of the CUSUMs
    S_t = max(0, S_{t-1} + slope·x_t + intercept) (one a channel, from 0) on the ``values`` (paths × steps).

    Compiled by Numba, in one pass: numpy's whole-array form (:func:`cusum` per channel, then their maximum and its
    running maximum) reads and writes each path about ten times; 4 channels on 48 × 20,000 values take 48 ms of
    CPU that way, 9-12 ms with this loop and the draws (the same thresholds to 1e-13).

    >>> peaks = np.empty((1, 4))
    >>> running_peaks(np.array([[1.0, -3.0, 2.0, 0.5]]), np.array([1.0, -1.0]), np.array([0.0, -1.0]), peaks)
    >>> peaks.tolist()
    [[1.0, 2.0, 2.0, 2.5]]
    """
    sums = np.zeros(len(slopes))
    for path in range(values.shape[0]):
        sums[:] = 0.0
        peak = 0.0
        for step in range(values.shape[1]):
            for channel in range(len(slopes)):
                total = max(0.0, sums[channel] + slopes[channel] * values[path, step] + intercepts[channel])
                sums[channel] = total
                peak = max(peak, total)
            peaks[path, step] = peak


def calibrate_rises(
    rate: float,
    slopes: np.ndarray,
    offsets: np.ndarray,
    erts: tuple[float, ...],
    seed: int = 0,
    paths: int = PATHS,
    steps: int = STEPS,
) -> tuple[float, ...]:
    """:func:`calibrate` on Bernoulli(``rate``) streams of 0s and 1s for channels that only rise on a 1 (a rate's
    rises: ``offsets`` ≤ 0 < ``slopes + offsets``), simulated a hit at a time: between hits each channel only falls,
    so the running peak moves only on a hit, and a stream is drawn as its geometric gaps between hits. The cost is
    the hits' (``rate · steps`` a path), not the steps': a rare rate's 200,000 steps are a few hundred hits.

    >>> slopes, offsets = np.log([2.0, 5.0]) - np.log([0.98 / 0.99, 0.95 / 0.99]), np.log([0.98 / 0.99, 0.95 / 0.99])
    >>> warning, drift = calibrate_rises(0.01, slopes, offsets, erts=(1e3, 1e7), seed=1)
    >>> bool(0 < warning < drift)
    True
    """
    slopes, offsets = np.asarray(slopes, dtype=float), np.asarray(offsets, dtype=float)
    if np.any(offsets > 0) or np.any(slopes + offsets <= 0):
        raise ValueError("calibrate_rises takes channels that rise on a hit and fall otherwise; use calibrate")
    rng = np.random.default_rng(seed)
    stride = max(1, steps // STEPS)
    expected = rate * steps
    hits = math.ceil(expected + 8 * math.sqrt(expected) + 8)  # all but never too few for a stream of ``steps``
    peaks = np.empty((paths, steps // stride))
    batch = max(1, BATCH_VALUES // hits)
    for start in range(0, paths, batch):
        at = np.cumsum(rng.geometric(rate, size=(min(batch, paths - start), hits)), axis=-1) - 1
        while at[:, -1].min() < steps:  # a stream with more hits than drawn: draw on
            more = np.cumsum(rng.geometric(rate, size=(len(at), hits)), axis=-1)
            at = np.concatenate([at, at[:, -1:] + more], axis=-1)
        peaks[start : start + len(at)] = hit_peaks(at, slopes, offsets, steps, stride)
    return run_length_thresholds(peaks, stride, erts)


@numba.njit(cache=True)
def hit_peaks(at: np.ndarray, slopes: np.ndarray, offsets: np.ndarray, steps: int, stride: int) -> np.ndarray:
    """Running peaks at every ``stride``-th of ``steps`` steps (a long simulation keeps no more) of the largest of
    CUSUM channels ``slopes · x + offsets`` on streams of 0s and 1s whose 1s are at steps ``at`` (paths × hits,
    increasing along each path; those past ``steps`` are ignored).

    A channel with offset o ≤ 0 and jump a = slope + o > 0 falls by −o a step to 0 and rises by a on a hit: after
    the k-th hit, g steps after the one before, it is S_k = max(0, S_{k−1} + o·g) + a (S_0 = 0). Compiled by Numba,
    one pass a path (a rate's recalibration: 9.6 -> 7.1 ms at rate 0.02, 25 -> 12 at 0.3).

    >>> hit_peaks(np.array([[1, 2, 9]]), np.array([2.0]), np.array([-1.0]), steps=10, stride=1).tolist()
    [[0.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]]
    """
    jumps = slopes + offsets
    kept = steps // stride
    peaks = np.empty((at.shape[0], kept))
    sums = np.zeros(len(jumps))
    for path in range(at.shape[0]):
        sums[:] = 0.0
        peak, before, filled = 0.0, -1, 0  # the largest value so far, the last hit's step, kept steps written
        for hit in range(at.shape[1]):
            step = at[path, hit]
            if step // stride >= kept:
                break
            peaks[path, filled : step // stride] = peak  # the kept steps before this hit's
            filled = step // stride
            for channel in range(len(jumps)):
                total = max(0.0, sums[channel] + offsets[channel] * (step - before - 1)) + jumps[channel]
                sums[channel] = total
                peak = max(peak, total)
            before = step
        peaks[path, filled:] = peak
    return peaks


def run_length_thresholds(peaks: np.ndarray, stride: int, erts: tuple[float, ...]) -> tuple[float, ...]:
    """Levels at which the mean run length to a first crossing is ``erts[i]``, from the running peaks of a
    statistic on simulated null streams (``peaks[p, i]``: path ``p``'s largest value in its first ``(i + 1)·stride``
    steps; a path that stays under a level over all of them has no crossing). Mean run lengths are estimated on a
    grid of levels (exposure over crossings) and those beyond the simulation extrapolated along
    log ARL = a + b·level, fitted on the upper half of the grid."""
    kept = peaks.shape[1] * stride  # the steps a path is watched for
    levels = np.linspace(np.quantile(peaks[:, 50 // stride], 0.5), np.quantile(peaks[:, -1], 0.5), GRID)
    before = np.stack([np.searchsorted(path, levels) for path in peaks]) * stride  # steps before each level
    alarms = (before < kept).sum(axis=0)
    exposure = np.minimum(before + stride, kept).sum(axis=0)
    usable = (alarms >= MIN_ALARMS) & (exposure / np.maximum(alarms, 1) >= 20)
    levels, log_arl = levels[usable], np.log(exposure[usable] / alarms[usable])
    if len(levels) < 4:
        raise ValueError("held-out reference too degenerate to calibrate (the statistic barely moves)")
    log_arl = np.maximum.accumulate(log_arl)
    upper = slice(len(levels) // 2, None)
    slope, intercept = np.polyfit(levels[upper], log_arl[upper], 1)
    if slope <= 0:
        raise ValueError("run length does not grow with the threshold: calibration failed")
    return tuple(
        float(np.interp(math.log(ert), log_arl, levels))
        if math.log(ert) <= log_arl[-1]
        else float((math.log(ert) - intercept) / slope)
        for ert in erts
    )
