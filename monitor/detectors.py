"""Online drift detection for one scalar feature: River's ADWIN with a warm-up and a frozen reference.

>>> import random
>>> rng = random.Random(7)
>>> detector = FeatureDetector("latency_ms", log_scale=True, delta=1e-5, warmup=300)
>>> quiet = [detector.update(rng.lognormvariate(6, 0.3)) for _ in range(2000)]
>>> any(quiet)
False
>>> shift = next(i for i in range(2000) if detector.update(rng.lognormvariate(6.6, 0.3)))
>>> shift < 100
True
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from river.drift import ADWIN
from river.stats import Mean

RECENT_VALUES = 256


def change_point(values: list[float]) -> int:
    """Index where ``values`` most likely changed mean (maximum of the scaled two-sample mean gap).

    >>> change_point([0.0] * 30 + [5.0] * 10)
    30
    """
    n, total = len(values), sum(values)
    best, best_at, left = -1.0, n - 1, 0.0
    for k in range(1, n):
        left += values[k - 1]
        gap = abs(left / k - (total - left) / (n - k)) * math.sqrt(k * (n - k) / n)
        if gap > best:
            best, best_at = gap, k
    return best_at


@dataclass(frozen=True)
class Shift:
    """A detected change of one feature's mean."""

    feature: str
    reference_mean: float
    current_mean: float
    onset: int
    """Estimated index (1-based, events of this detector) of the first event of the new regime."""
    detected_at: int
    statistic: float
    """Change of the watched mean (log scale for heavy-tailed features)."""
    threshold: float
    """ADWIN's confidence delta."""


@dataclass
class FeatureDetector:
    """ADWIN over one feature; quiet for ``warmup`` events, then reports each :class:`Shift`."""

    feature: str
    log_scale: bool
    delta: float
    warmup: int
    adwin: ADWIN = field(init=False)
    reference: Mean = field(default_factory=Mean, init=False)
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_VALUES), init=False)
    seen: int = field(default=0, init=False)
    shifted: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")
        self.adwin = ADWIN(delta=self.delta)

    def watched(self, value: float) -> float:
        """The value on the scale the detector watches (log for heavy-tailed features)."""
        return math.log1p(max(value, 0.0)) if self.log_scale else value

    def cut_statistic(self) -> tuple[float, float]:
        """Gap between the means of the older and newer half of the recent values, and the ADWIN bound
        (Bifet & Gavaldà 2007) that a gap must pass at this ``delta``; NaN while fewer than 20 values.
        """
        values = [self.watched(v) for v in self.recent]
        n = len(values)
        if n < 20:
            return math.nan, math.nan
        half = n // 2
        older, newer = values[:half], values[half:]
        mean = sum(values) / n
        variance = sum((v - mean) ** 2 for v in values) / n
        m = 1 / (1 / len(older) + 1 / len(newer))
        log_term = math.log(2 * math.log(n) / self.delta)
        bound = math.sqrt(2 / m * variance * log_term) + 2 / (3 * m) * log_term
        return abs(sum(newer) / len(newer) - sum(older) / len(older)), bound

    def update(self, value: float) -> Shift | None:
        """Feed one value; return the shift it completes, if any."""
        watched = self.watched(value)
        before = self.adwin.estimation
        self.adwin.update(watched)
        self.seen += 1
        self.recent.append(value)
        if self.seen <= self.warmup or not self.adwin.drift_detected:
            if not self.shifted:
                self.reference.update(value)
            return None
        self.shifted = True
        recent = list(self.recent)
        split = change_point(recent)
        current = recent[split:]
        return Shift(
            feature=self.feature,
            reference_mean=self.reference.get(),
            current_mean=sum(current) / len(current),
            onset=self.seen - len(current) + 1,
            detected_at=self.seen,
            statistic=self.adwin.estimation - before,
            threshold=self.delta,
        )
