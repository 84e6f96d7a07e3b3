"""A detector that never leaves QUIET: the floor a benchmark compares against, a placeholder where nothing is watched.

>>> detector = NullDetector("latency_ms")
>>> [detector.update(x, at=i) for i, x in enumerate([1.0, 1e9], start=1)]
[<Level.QUIET: 0>, <Level.QUIET: 0>]
>>> detector.trajectory(np.array([5.0, 6.0])).tolist(), detector.seen
([0.0, 0.0], 2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.detector import Level


@dataclass
class NullDetector:
    """A :class:`monitor.detector.Detector` whose statistic stays 0, under levels that cannot be reached."""

    feature: str
    reference_mean: float = math.nan
    kind: str = "null"
    warning: float = math.inf
    threshold: float = math.inf
    statistic: float = 0.0
    onset: int = 0
    seen: int = 0
    """Values fed (counted only, like the clock of a detector that watches)."""

    @property
    def level(self) -> Level:
        return Level.QUIET

    def update(self, value: Any, at: int | None = None) -> Level:
        self.seen += 1
        return Level.QUIET

    def trajectory(self, values: Any) -> np.ndarray:
        return np.zeros(len(values))

    def advance(self, values: Any, at: np.ndarray | None = None) -> None:
        self.seen += len(values)

    def restart(self) -> None:
        """Nothing to restart: the statistic is always 0."""

    def current_mean(self, values: Sequence[float]) -> float:
        return float(np.mean(values)) if len(values) else math.nan
