"""A segment's detectors: one per watched input, calibrated together to the segment's share of the service ERT.

The set is fed an event's inputs at a time (:meth:`DetectorSet.update`) or a quiet stretch of them at once
(:meth:`DetectorSet.first_drift` looks ahead, :meth:`DetectorSet.advance` takes the stretch), and keeps the draft:
the inputs whose detectors are at their warning level.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from monitor.calibration import SEGMENT_MISS, detector_ert
from monitor.calibration_pool import fitted
from monitor.cpu import CLOCK
from monitor.detector import Detector, Level
from monitor.features import Measurements
from monitor.inputs import OPTIONAL, Budget, spec

WARNING_SHARE = 1e-3
"""The warning level's ERT as a share of the drift level's: warnings are cheap (a draft), drifts page."""


@dataclass
class DetectorSet:
    """The detectors of one segment (input name → detector) and the draft of those at warning."""

    service_ert: float
    seed: int = 0
    ert: float = 0.0
    """Each detector's ERT: the service's, times the detectors it is split across (:meth:`calibrate`)."""
    miss: float = SEGMENT_MISS
    """Each detector's share of the segment's reference miss (see :func:`monitor.detectors.calibrated`)."""
    detectors: dict[str, Detector] = field(default_factory=dict)
    references: dict[str, np.ndarray] = field(default_factory=dict)
    """Reference values of the scalar inputs, for the z-test that names inputs that also moved."""
    draft: set[str] = field(default_factory=set)

    def calibrate(self, values: dict[str, list], measured: Iterable[str]) -> None:
        """Replace the detectors with ones calibrated on the reference ``values`` (input → values). The ERT and the
        miss share are split across the ``measured`` inputs and every optional one."""
        budget = len(set(measured) | OPTIONAL)
        self.ert, self.miss = detector_ert(self.service_ert, budget), SEGMENT_MISS / budget
        self.references, self.detectors, self.draft = {}, {}, set()
        self._install(values)

    def add(self, name: str, values: list) -> None:
        """A detector for input ``name``, calibrated on its reference ``values`` (within the current budget)."""
        self._install({name: values})

    def _install(self, values: dict[str, list]) -> None:
        """Detectors calibrated on ``values`` (input → reference values) in the calibration pool, the windowed
        tests' (the longest) first."""
        budget = Budget(self.ert, self.ert * WARNING_SHARE, self.miss, self.seed)
        fits = {}
        with CLOCK.stage("calibration"):
            for name in sorted(values, key=lambda name: (spec(name).scalar, name)):
                watched = spec(name)
                fit = watched.calibrator(name, watched.column(values[name]), budget)
                if fit is not None:
                    fits[name] = fit
        detectors = fitted(fits)
        for name in sorted(detectors):
            self.detectors[name] = detectors[name]
            if spec(name).scalar:
                self.references[name] = np.array(values[name], dtype=np.float32)

    def clear(self) -> None:
        """No detectors (a new reference is being collected)."""
        self.detectors, self.references, self.draft = {}, {}, set()

    def update(self, inputs: Measurements, at: int) -> dict[str, Level]:
        """Feed one event's inputs (the ``at``-th event of the segment); the levels of the detectors that saw one."""
        return {
            name: detector.update(inputs[name], at=at) for name, detector in self.detectors.items() if name in inputs
        }

    def redraft(self, levels: dict[str, Level]) -> None:
        """The draft after an event: the drafted inputs and those just updated (``levels``) that are at warning."""
        self.draft = {name for name in self.draft | set(levels) if self.detectors[name].level >= Level.WARNING}

    def first_drift(self, positions: dict[str, list[int]], inputs: list[Measurements], stop: int) -> int:
        """Position of the first of ``inputs`` at which a detector would reach its drift level (``stop`` if none
        before it); ``positions``: input name → the positions of the events that measured it."""
        for name, detector in self.detectors.items():
            if name in positions:
                values = spec(name).column([inputs[i][name] for i in positions[name]])
                drifted = np.flatnonzero(detector.trajectory(values) >= detector.threshold)
                stop = min(stop, positions[name][drifted[0]]) if drifted.size else stop
        return stop

    def advance(self, fed: dict[str, list[int]], values: dict[str, list], first: int) -> None:
        """Feed the events at positions ``fed`` (input name → positions; position 0 is the segment's event
        ``first``), whose values are ``values`` (input name → its values there), at once, none reaching a drift
        level; then draft every detector at warning."""
        for name, positions in fed.items():
            if positions and name in self.detectors:
                self.detectors[name].advance(spec(name).column(values[name]), at=first + np.array(positions))
        self.draft = {name for name, detector in self.detectors.items() if detector.level >= Level.WARNING}
