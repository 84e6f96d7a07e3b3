"""The detector contract: what a segment, its incidents and the metrics read of any detector.

A detector watches one input of a segment (a feature, a label, a vector) against its reference. It is fed one
value at a time (:meth:`Detector.update`) or a batch at once (:meth:`Detector.trajectory` to look ahead,
:meth:`Detector.advance` to take it), and says how far it is from its reference: a :class:`Level` read from its
``statistic`` against two calibrated levels, ``warning`` and ``threshold``.

>>> level_at(0.5, warning=1.0, threshold=3.0), level_at(1.0, 1.0, 3.0), level_at(7.0, 1.0, 3.0)
(<Level.QUIET: 0>, <Level.WARNING: 1>, <Level.DRIFT: 2>)
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any, Protocol, runtime_checkable

import numpy as np


class Level(IntEnum):
    QUIET = 0
    WARNING = 1
    DRIFT = 2


def level_at(statistic: float, warning: float, threshold: float) -> Level:
    """The level a statistic is at: DRIFT at or past ``threshold``, WARNING at or past ``warning``, else QUIET."""
    return Level.DRIFT if statistic >= threshold else Level.WARNING if statistic >= warning else Level.QUIET


@runtime_checkable
class Detector(Protocol):
    """One input's calibrated detector."""

    feature: str
    """The input it watches."""
    kind: str
    """Its family, as an incident names it (``cusum``, ``bernoulli-cusum``, ``mmd``, ``hellinger``, …)."""
    warning: float
    threshold: float
    """The drift level of :attr:`statistic`."""
    reference_mean: float
    """What quiet looks like, as an incident's headline reads it: the reference mean of a scalar, the null median of
    a windowed test's statistic."""

    @property
    def statistic(self) -> float: ...

    @property
    def level(self) -> Level: ...

    @property
    def onset(self) -> int:
        """Event at which the current departure from the reference began (by the clock :meth:`update` was given)."""
        ...

    def update(self, value: Any, at: int | None = None) -> Level:
        """Feed one value, the ``at``-th event of the caller's clock; return the level reached."""
        ...

    def trajectory(self, values: Any) -> np.ndarray:
        """The statistic after each of ``values`` from the current state, without changing it."""
        ...

    def advance(self, values: Any, at: np.ndarray | None = None) -> None:
        """Feed ``values`` (events ``at`` of the caller's clock) at once, as :meth:`update` one by one would, when
        none of them reaches the drift level."""
        ...

    def restart(self) -> None:
        """Back to a statistic of zero, as after an alarm is handled."""
        ...

    def current_mean(self, values: Sequence[float]) -> float:
        """What an incident reports as the input's value now, given its values in the drifted window (a scalar's
        mean; a windowed test's statistic)."""
        ...


def alarms(detector: Detector, values: Any, limit: int | None = None) -> list[int]:
    """Indices of ``values`` at which ``detector`` alarms, fed through the contract alone as one event at a time
    would be, and restarted after each alarm (as a deployed detector is once its incident is handled); at most
    ``limit`` of them. It changes ``detector``: pass a copy to keep it. Batches grow while nothing alarms, so long
    quiet streams run vectorised.

    >>> from monitor.detectors import calibrated
    >>> rng = np.random.default_rng(0)
    >>> detector = calibrated("latency_ms", rng.normal(size=2000), ert=1e5, warning_ert=1e2)
    >>> alarms(detector, rng.normal(size=5000)), len(alarms(detector, rng.normal(1.0, 1.0, 2000))) > 20
    ([], True)
    """
    found: list[int] = []
    at, chunk = 0, 1024
    while at < len(values) and (limit is None or len(found) < limit):
        block = values[at : at + chunk]
        crossed = np.flatnonzero(detector.trajectory(block) >= detector.threshold)
        fed = int(crossed[0]) if crossed.size else len(block)
        if fed:
            detector.advance(block[:fed])
        if crossed.size:
            found.append(at + fed)
            detector.update(block[fed])
            detector.restart()
            at, chunk = at + fed + 1, 1024
        else:
            at, chunk = at + fed, min(chunk * 4, 1 << 20)
    return found
