"""Online drift detectors for one feature, calibrated on a reference to a target ERT between false alarms.

River's detectors with default settings raise far too many false alarms on a busy stream and cannot be
set to a false-alarm rate. Here every feature gets a two-sided CUSUM (Page 1954), a
:class:`monitor.detector.Detector`, whose two thresholds :mod:`monitor.calibration` sets on the reference:

- **scalar features** are watched as normal scores against the reference (z = Φ⁻¹(reference ECDF(x)),
  standardised): robust to heavy tails (a latency outlier counts once, not by its size) and the same for
  every feature. Channels with allowances k = 0.25 and 0.75 are quickest for shifts of 0.5 σ and 1.5 σ.
- **rates** (features that are 0/1 in the reference, or nearly constant: the rate of values further from the
  usual value than the reference's other values' median distance) get a Bernoulli CUSUM: the log-likelihood
  ratio of a null rate against rises to 2× and 5× it
  (at least +0.5 points) and, for common rates, a fall to half. A rare rate is poorly known from a reference
  (about 7 refusals in 800 events, sometimes none), and a CUSUM calibrated at a rate below the true one
  alarms every few thousand events. So the null of the rises is the upper ``1 - miss`` quantile pᵤ of the
  rate's Jeffreys posterior (for an empty reference about 6/n at miss 0.0005, never 0.5/n), and that of the
  fall the lower quantile pₗ. The run length is the ERT when the true rate is at the bound and far longer
  at the rates under it (the MLE, usually), so the ERT holds but for a share ``miss`` of references, and
  in those the true rate is near the bound. For refusals at 0.88% and a segment's ERT of 2.1·10⁷: 7 in 800
  give pᵤ ≈ 2.5% and no false alarm in 4·10⁶ quiet events; none in 800 give pᵤ ≈ 0.76% and still a run
  length of ~2·10⁶ (calibrated at 0.5/n: ~1,400). The price is a slower alarm on small rises, measured from pᵤ
  rather than from the MLE: +5 points of refusals take ~750 events instead of ~630 at a 10% miss share.
  So the reference is only where a rate's null starts (:class:`PooledNull`): the events a rate detector sees while
  its statistic is low (:data:`POOLED_BELOW`) join it, and each time they have doubled it is recalibrated on them
  all. The bound tightens as the count grows (7 refusals in 800 events: pᵤ ≈ 2.5%; 28 in 3,200: ≈ 1.5%), and with
  it the alarm on a small rise. An event joins by the statistic before it, never by its own value, so the pooled
  events of quiet traffic are a fair sample of it when its events are independent; a rise's events mostly do not
  join, as it lifts the statistic. Known limits: refusals that come in bursts (one makes the next likelier) are
  undercounted, as the events after a hit are those left out; and each recalibration spends the whole ``miss``, so
  over the stages the ERT holds for a few times fewer references than ``miss`` says.
- **tail scores** (``Kind.TAIL``: the learned attack probability) are a rate too: of values above the reference's
  top :data:`TAIL_SHARE`. A wave of attacks is a few events scored high; in normal scores a 5% wave moves the mean
  by about 0.15 σ, under the smaller allowance, whereas the share above the top 1% rises several-fold.

The transform is fitted on one half of the reference, the thresholds calibrated on the other (held-out)
half, so a detector is not calibrated on the data that defined "normal". Once the statistic reaches the
drift level it is held there (capped) until the stream returns: then it falls back under the warning level
in a few dozen events, which is how a segment knows its incident is over.

>>> rng = np.random.default_rng(7)
>>> detector = calibrated("latency_ms", rng.lognormal(6, 0.3, 4000), ert=1e6, warning_ert=1e3)
>>> quiet = [detector.update(x) for x in rng.lognormal(6, 0.3, 5000)]
>>> max(quiet) < Level.DRIFT
True
>>> next(i for i, x in enumerate(rng.lognormal(6.15, 0.3, 5000)) if detector.update(x) is Level.DRIFT) < 300
True
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import ndtri
from scipy.stats import beta

from monitor.calibration import GUARD_MISS, SEGMENT_MISS, STEPS, calibrate, calibrate_rises, cusum, guard
from monitor.cpu import CLOCK
from monitor.detector import Level, level_at

ALLOWANCES = (0.25, 0.75)
"""CUSUM allowances k in reference standard deviations, each half the shift its channel is quickest for: a
0.5 σ shift, and a 1.5 σ one (one CUSUM tuned small is slow on big shifts, so both run, calibrated jointly)."""
RATE_RATIOS = (2.0, 5.0)
"""Rises of a rate that the Bernoulli CUSUM's channels are tuned for: a doubling, and a wave (five times)."""
RATE_RISE = 0.005
"""Smallest rise of a rate the Bernoulli CUSUM is tuned for (a rare rate doubling is too small to matter)."""
RATE_DROP_FROM = 0.05
MODE_SHARE = 0.95
"""A feature whose reference is this much one value is watched as a rate: of values further from it than the
reference's other values usually are (a near-constant feature's normal scores would move too rarely to calibrate)."""
TAIL_SHARE = 0.01
"""Share of a tail-watched score's reference above its cut (``Kind.TAIL``): the operating point of the injection
benchmark, whose recall at 1% false positives is what a wave of attacks lifts this rate by."""
CUT_TOLERANCE = 1e-6
"""Relative distance within which a value counts as at the median distance (a float32 reference, float64 values)."""
KNOTS = 512
"""Most points kept of a reference ECDF (quantiles beyond that), so the pickled state stays small."""
RATE_EVENTS = 200
"""A rate's calibration simulates streams long enough to hold this many events of the rate, on average."""
RATE_GRID = 1.02
"""Ratio of neighbouring null rates a rate detector is calibrated at: a bound is rounded to this grid (up for the
upper bound, the null of the rises: never less conservative), so calibrations are shared."""
RATE_CALIBRATIONS = 4096
"""Rate calibrations kept (a few floats each): one per grid rate and budget."""
OFF_LATTICE = 1 + 1e-9
"""A rate's levels are raised by this factor from where calibration puts them: its statistic moves on a lattice (sums
of a few increments) which they can fall on, and one event at a time and a batch sum it in another order, so at a
lattice level the two could disagree, by rounding, about whether it was reached."""
POOLED_BELOW = 0.1
"""An event joins a rate's null while the statistic is under this share of the drift level (one hit of a rare rate
takes it about there). Simulated at a reference's calibration (ERT 2·10⁷, rates 0.9% and 2.3%): 92-95% of a quiet
rate's events join, and 9% of the first 1,000 of a rise by 5 points."""
POOLED_REFERENCES = 32
"""A rate's null is pooled until it holds this many references' worth of events (25,600 at the default 800):
recalibrations stop there, as what quiet traffic looks like may slowly move."""


@dataclass
class PooledNull:
    """The events a rate detector's null is estimated from: its reference's, then those it saw while its statistic
    was low (``events``, of which ``hits`` counted), recalibrated on when they reach ``due`` (twice the count of the
    last calibration; None past ``limit``). ``ert`` … ``seed``: its calibration budget."""

    events: int
    hits: float
    limit: int
    ert: float
    warning_ert: float
    miss: float
    seed: int
    due: int | None = None

    @classmethod
    def of(cls, events: int, hits: float, ert: float, warning_ert: float, miss: float, seed: int) -> PooledNull:
        """The null of a reference of ``events`` with ``hits``, pooled up to :data:`POOLED_REFERENCES` of them."""
        return cls(events, hits, POOLED_REFERENCES * events, ert, warning_ert, miss, seed)

    def calibration(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Channels (the caller's own copies), warning and drift levels on the events pooled so far; the next
        recalibration is due when they have doubled again."""
        self.due = 2 * self.events if 2 * self.events <= self.limit else None
        slopes, offsets, warning, threshold = _rate_calibration(
            self.events, self.hits, self.ert, self.warning_ert, self.miss, self.seed
        )
        return slopes.copy(), offsets.copy(), warning, threshold


class CusumDetector:
    """Multi-channel CUSUM on a transformed feature with calibrated warning and drift levels.

    ``knots``/``scores`` map a raw value to the watched value by linear interpolation (a reference ECDF
    turned into normal scores, or a 0/1 indicator); channel ``i`` adds ``slopes[i]·z + offsets[i]`` per event. A
    rate's ``null`` is pooled from the events it sees and recalibrated on (see the module docstring).
    """

    null: PooledNull | None = None
    """A rate's pooled null; None for a scalar (and a rate checkpointed before nulls were pooled: fixed)."""

    def __init__(
        self,
        feature: str,
        knots: np.ndarray,
        scores: np.ndarray,
        slopes: np.ndarray,
        offsets: np.ndarray,
        warning: float,
        threshold: float,
        reference_mean: float,
        kind: str,
        null: PooledNull | None = None,
    ) -> None:
        if not 0 < warning < threshold:
            raise ValueError(f"need 0 < warning < threshold, got {warning}, {threshold}")
        self.feature, self.knots, self.scores = feature, knots, scores
        self.slopes, self.offsets = slopes, offsets
        self.warning, self.threshold, self.reference_mean, self.kind = warning, threshold, reference_mean, kind
        self.null = null
        self.sums = [0.0] * len(slopes)
        self.starts = [0] * len(slopes)
        self.seen = 0

    def watch(self, values: np.ndarray) -> np.ndarray:
        """The watched values (normal scores or 0/1) of raw ``values``, vectorised."""
        return np.interp(values, self.knots, self.scores)

    @property
    def statistic(self) -> float:
        return max(self.sums)

    @property
    def onset(self) -> int:
        """Event where the leading channel's CUSUM last left zero: by the clock :meth:`update` was given (the
        segment's event count), else this detector's own count (1-based)."""
        return self.starts[self.sums.index(self.statistic)]

    @property
    def level(self) -> Level:
        return level_at(self.statistic, self.warning, self.threshold)

    def update(self, value: float, at: int | None = None) -> Level:
        """Feed one raw value, the ``at``-th event of the caller's clock (for :attr:`onset`); return the level."""
        self.seen += 1
        z = float(np.interp(value, self.knots, self.scores))
        pooled = self.null is not None and self.statistic < POOLED_BELOW * self.threshold
        for i, (slope, offset) in enumerate(zip(self.slopes, self.offsets, strict=True)):
            before = self.sums[i]
            self.sums[i] = min(max(0.0, before + slope * z + offset), self.threshold)
            if before == 0.0 and self.sums[i] > 0.0:
                self.starts[i] = self.seen if at is None else at
        if pooled:
            self._pool(1, z)
        return self.level

    def trajectory(self, values: np.ndarray) -> np.ndarray:
        """The statistic after each of ``values`` from the current state, vectorised and without changing it
        (uncapped: a batch is run only up to its first drift, see :meth:`advance`). Past a recalibration of the
        null it is scaled to the current drift level, so that reaching :attr:`threshold` is reaching the level then."""
        z = self.watch(values)
        paths = self._paths(z)
        due = self._due_within(paths)
        if due is None:
            return paths.max(axis=0)
        ahead = copy.deepcopy(self)
        ahead.advance(values[:due])
        after = ahead.trajectory(values[due:]) * (self.threshold / ahead.threshold)
        return np.concatenate([paths[:, :due].max(axis=0), after])

    def advance(self, values: np.ndarray, at: np.ndarray | None = None) -> None:
        """Feed ``values`` (events ``at`` of the caller's clock) at once, as :meth:`update` one by one would, when
        none of them reaches the drift level."""
        z = self.watch(values)
        while z.size:
            paths = self._paths(z)
            due = self._due_within(paths)
            taken = len(z) if due is None else due
            self._take(z[:taken], paths[:, :taken], None if at is None else at[:taken])
            z, at = z[taken:], None if at is None else at[taken:]

    def restart(self) -> None:
        """Back to zero, as after an incident is handled or a reference is replaced."""
        self.sums = [0.0] * len(self.slopes)

    def current_mean(self, values: Sequence[float]) -> float:
        """The mean of the feature's raw ``values`` (nan when there are none)."""
        return float(np.mean(values)) if values else float("nan")

    def _paths(self, z: np.ndarray) -> np.ndarray:
        """Each channel's statistic after each watched value ``z`` (uncapped)."""
        channels = zip(self.slopes, self.offsets, self.sums, strict=True)
        return np.stack([cusum(slope * z + offset, start) for slope, offset, start in channels])

    def _pooled(self, paths: np.ndarray) -> np.ndarray:
        """Which events of ``paths`` join the null: those that came while the statistic was under
        :data:`POOLED_BELOW` of the drift level."""
        return np.concatenate([[self.statistic], paths.max(axis=0)[:-1]]) < POOLED_BELOW * self.threshold

    def _due_within(self, paths: np.ndarray) -> int | None:
        """How many events of ``paths`` are fed before the null is recalibrated (None: not within them)."""
        null = self.null
        if null is None or null.due is None or null.events + paths.shape[1] < null.due:
            return None
        reached = np.flatnonzero(null.events + np.cumsum(self._pooled(paths)) >= null.due)
        return int(reached[0]) + 1 if reached.size else None

    def _take(self, z: np.ndarray, paths: np.ndarray, at: np.ndarray | None) -> None:
        """Feed watched values ``z`` whose channel ``paths`` are computed (events ``at`` of the caller's clock)."""
        pooled = self._pooled(paths) if self.null is not None else None
        for i, path in enumerate(paths):
            left = np.flatnonzero((np.concatenate([[self.sums[i]], path[:-1]]) == 0.0) & (path > 0.0))
            if left.size:
                self.starts[i] = self.seen + int(left[-1]) + 1 if at is None else int(at[left[-1]])
            self.sums[i] = float(path[-1])
        self.seen += len(z)
        if pooled is not None:
            self._pool(int(pooled.sum()), float(z[pooled].sum()))

    def _pool(self, events: int, hits: float) -> None:
        """Add ``events`` with ``hits`` to the null; once they make it due, recalibrate on it and start again from
        zero (as after a new reference)."""
        null = self.null
        assert null is not None
        null.events, null.hits = null.events + events, null.hits + hits
        if null.due is not None and null.events >= null.due:
            self.slopes, self.offsets, self.warning, self.threshold = CLOCK.timed("calibration", null.calibration)
            self.sums, self.starts = [0.0] * len(self.slopes), [0] * len(self.slopes)


def _normal_scores(fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ECDF knots of ``fit`` (mid-ranks, at most :data:`KNOTS`) and their normal scores."""
    n = len(fit)
    values, counts = np.unique(fit, return_counts=True)
    below = np.cumsum(counts) - counts
    u = (below + (counts + 1) / 2) / (n + 1)
    if len(values) > KNOTS:
        keep = np.unique(np.linspace(0, len(values) - 1, KNOTS).round().astype(int))
        values, u = values[keep], u[keep]
    return values, ndtri(u)


def _llr_channels(p0: float, targets: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Slopes and offsets of the log-likelihood ratio CUSUMs of rate ``p0`` against each rate of ``targets``."""
    offsets = np.array([math.log((1 - p1) / (1 - p0)) for p1 in targets])
    slopes = np.array([math.log(p1 / p0) for p1 in targets]) - offsets
    return slopes, offsets


def _bernoulli_thresholds(
    p: float, slopes: np.ndarray, offsets: np.ndarray, erts: tuple[float, ...], seed: int
) -> tuple[float, ...]:
    """Thresholds calibrated on Bernoulli(``p``) streams, long enough to hold :data:`RATE_EVENTS` events (raised
    off the lattice: :data:`OFF_LATTICE`), simulated hit by hit (:func:`~monitor.calibration.calibrate_rises`):
    the rises' channels on the stream's events, a fall's on the others (a fall of the rate is a rise of 1 − it)."""
    steps = max(STEPS, min(int(RATE_EVENTS / p), STEPS * 20))
    if np.all(offsets <= 0):
        levels = calibrate_rises(p, slopes, offsets, erts, seed, steps=steps)
    else:
        levels = calibrate_rises(1 - p, -slopes, slopes + offsets, erts, seed, steps=steps)
    return tuple(level * OFF_LATTICE for level in levels)


def _rate_calibration(
    events: int, hits: float, ert: float, warning_ert: float, miss: float, seed: int
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Channels, warning and drift levels of a Bernoulli CUSUM for a rate seen ``hits`` times in ``events``: those of
    its posterior's bounds pᵤ and pₗ (:func:`_bounded_rate_calibration`), pᵤ rounded up and pₗ down to
    :data:`RATE_GRID`, so the segments of a service and their recalibrations share a few simulations."""
    posterior = beta(hits + 0.5, events - hits + 0.5)
    upper, lower = float(posterior.ppf(1 - miss)), float(posterior.ppf(miss))
    upper = min(RATE_GRID ** math.ceil(math.log(upper, RATE_GRID)), (1 + upper) / 2)
    lower = RATE_GRID ** math.floor(math.log(lower, RATE_GRID)) if lower >= RATE_DROP_FROM else 0.0
    return _bounded_rate_calibration(upper, lower, ert, warning_ert, seed)


@lru_cache(maxsize=RATE_CALIBRATIONS)
def _bounded_rate_calibration(
    upper: float, lower: float, ert: float, warning_ert: float, seed: int
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Channels, warning and drift levels of a Bernoulli CUSUM for a rate between ``lower`` and ``upper``.

    Rises to max(r·pᵤ, pᵤ + :data:`RATE_RISE`) for r in :data:`RATE_RATIOS` (at most (1+pᵤ)/2) are calibrated at
    the upper bound pᵤ; when the lower bound pₗ ≥ :data:`RATE_DROP_FROM`, a fall to pₗ/2 is calibrated at pₗ
    (the fall of a rare rate is neither quick to see nor worth a page; ``lower`` is 0 then). The two groups share
    the ERT (each gets twice it) and the fall channel is scaled so the rises' drift level is also its own (its
    warning level then follows the rises' ratio, approximately its own). The simulation depends on nothing else,
    so its result is kept.
    """
    rises = [min(max(ratio * upper, upper + RATE_RISE), (1 + upper) / 2) for ratio in RATE_RATIOS]
    slopes, offsets = _llr_channels(upper, rises)
    if lower < RATE_DROP_FROM:
        warning, threshold = _bernoulli_thresholds(upper, slopes, offsets, (warning_ert, ert), seed)
        return slopes, offsets, warning, threshold
    warning, threshold = _bernoulli_thresholds(upper, slopes, offsets, (2 * warning_ert, 2 * ert), seed)
    fall_slopes, fall_offsets = _llr_channels(lower, [lower / 2])
    (fall_threshold,) = _bernoulli_thresholds(lower, fall_slopes, fall_offsets, (2 * ert,), seed + 1)
    scale = threshold / fall_threshold
    return np.append(slopes, scale * fall_slopes), np.append(offsets, scale * fall_offsets), warning, threshold


def _beyond_usual(reference: np.ndarray, base: float) -> tuple[np.ndarray, np.ndarray]:
    """Knots and 0/1 scores of a mode-dominated feature's rate: 1 for a value further from its mode ``base`` than
    the median distance of the reference's other values (:data:`CUT_TOLERANCE` counting as at it), 0 otherwise.

    A mostly-zero score is watched above its usual nonzero level: a strong match is rarer in quiet traffic than a
    weak one, so a wave of strong matches is a larger rise of this rate than of the rate of nonzero values. A 0/1
    feature (or one whose other values are all the same distance off) is watched as the rate of values off its mode.

    >>> knots, scores = _beyond_usual(np.array([0.0] * 97 + [1 / 3, 1 / 3, 1.0], dtype=np.float32), 0.0)
    >>> np.interp([0.0, 1 / 3, 2 / 3, 1.0], knots, scores).tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    off = np.abs(reference[reference != base] - base)
    cut = float(np.median(off)) if off.size and off.min() < off.max() else 0.0
    edge = cut * CUT_TOLERANCE + 1e-9
    return np.array([base - cut - edge, base - cut, base + cut, base + cut + edge]), np.array([1.0, 0.0, 0.0, 1.0])


def _above(reference: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Knots and 0/1 scores of a tail-watched score's rate: 1 above the reference's top ``share`` (its
    ``1 - share`` quantile; :data:`CUT_TOLERANCE` counting as at it), 0 at or below.

    >>> knots, scores = _above(np.arange(100, dtype=np.float32) / 100, 0.05)
    >>> np.interp([0.5, 0.94, 0.95, 0.99], knots, scores).tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    cut = float(np.quantile(reference, 1 - share))
    return np.array([cut, cut + abs(cut) * CUT_TOLERANCE + 1e-9]), np.array([0.0, 1.0])


def calibrated(
    feature: str,
    reference: np.ndarray,
    ert: float,
    warning_ert: float,
    seed: int = 0,
    miss: float = SEGMENT_MISS,
    tail: bool = False,
) -> CusumDetector:
    """A detector for ``feature`` whose false alarms on reference-like traffic come once per ``ert`` events
    (warnings once per ``warning_ert``): a scalar's but for 10% of references (:func:`guard`), a rate's but
    for a share ``miss`` (a segment splits its :data:`SEGMENT_MISS` across its detectors). Even-indexed
    reference events fit a scalar's transform, odd ones calibrate it; rates are calibrated on Bernoulli draws
    at a bound of the reference rate (a parametric bootstrap: a rare event may not be in the reference), then
    again as quiet events pool into it (:class:`PooledNull`)."""
    reference = np.asarray(reference, dtype=float)
    if len(reference) < 200:
        raise ValueError(f"a reference of {len(reference)} events is too short to calibrate (at least 200)")
    distinct, counts = np.unique(reference, return_counts=True)
    binary = set(distinct.tolist()) <= {0.0, 1.0}
    if tail or binary or counts.max() >= MODE_SHARE * len(reference):
        if tail and not binary:
            knots, scores = _above(reference, TAIL_SHARE)
        else:
            knots, scores = _beyond_usual(reference, 0.0 if binary else float(distinct[counts.argmax()]))
        hits = float(np.interp(reference, knots, scores).sum())
        null = PooledNull.of(len(reference), hits, ert, warning_ert, miss, seed)
        slopes, offsets, warning, threshold = null.calibration()
        kind = "bernoulli-cusum"
    else:
        null = None
        fit, held_out = reference[0::2], reference[1::2]
        knots, z = _normal_scores(fit)
        watched = np.interp(reference, knots, z)
        mean, std = float(watched.mean()), float(watched.std()) or 1.0
        # channel (k, sign) adds the log-likelihood ratio of a 2k shift: 2k·(sign·(z - mean)/std - k)
        slopes = np.array([2 * k * sign / std for k in ALLOWANCES for sign in (1, -1)])
        offsets = np.array([2 * k * (-sign * mean / std - k) for k in ALLOWANCES for sign in (1, -1)])
        draws, scores = np.interp(held_out, knots, z), z
        erts = (warning_ert, ert)
        warning, threshold = calibrate(draws, slopes, offsets, erts, guard(draws, GUARD_MISS), seed)
        kind = "cusum"
    usual = float(reference.mean())
    return CusumDetector(feature, knots, scores, slopes, offsets, warning, threshold, usual, kind, null)
