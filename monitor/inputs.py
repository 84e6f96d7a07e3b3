"""The inputs a segment watches, each with how its detector is made: the registry a segment asks, by input name.

An input is a scalar feature (every one of :data:`monitor.features.FEATURES`, watched by a CUSUM) or one of the
windowed tests' inputs (an embedding, a label, the numeric profile). Its :class:`Input` says how its values form a
column (what a detector takes at once), how many reference values its detector needs, how it is calibrated, and
how its reference is collected. To watch a new input: register its :class:`Input` in :data:`INPUTS`.

>>> spec("latency_ms").needed, spec("prompt_embedding").needed, spec("an_unregistered_number").scalar
(200, 400, True)
>>> spec("language").column(["en", "fr"]), spec("refusal").column([0.0, 1.0]).tolist()
(['en', 'fr'], [0.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import numpy as np

from monitor.calibration_pool import Fit
from monitor.detectors import calibrated
from monitor.features import FEATURES, Kind
from monitor.windows import CategoryMap, FeatureMap, FourierMap, ProfileMap, calibrated_window

MIN_REFERENCE = 200
"""Reference values a scalar's detector needs."""
WINDOW_EVENTS = 200
"""Events in a windowed test's current window; its reference needs at least two windows of events."""


@dataclass(frozen=True)
class Budget:
    """A detector's share of its segment's false alarms: its ERT (events between false alarms at the drift level, and
    at the warning level), the share of references whose error it may miss, and its simulations' seed."""

    ert: float
    warning_ert: float
    miss: float
    seed: int


class Calibrator(Protocol):
    def __call__(self, name: str, reference: Any, budget: Budget) -> Fit | None:
        """The calibration of input ``name``'s detector on its ``reference`` column, to run in the calibration pool
        (:mod:`monitor.calibration_pool`; None: nothing to watch)."""
        ...


def scalar_cusum(name: str, reference: np.ndarray, budget: Budget) -> Fit:
    """A CUSUM (a Bernoulli one for a rate, and for the rate above a ``Kind.TAIL`` score's reference top) on a
    scalar's reference: :func:`monitor.detectors.calibrated`."""
    values = reference.astype(np.float32)
    tail = name in FEATURES and FEATURES[name].kind is Kind.TAIL
    return partial(calibrated, name, values, budget.ert, budget.warning_ert, budget.seed, budget.miss, tail=tail)


@dataclass(frozen=True)
class WindowTest:
    """Calibrates a windowed two-sample test (:func:`monitor.windows.calibrated_window`) with the feature map that
    ``fit`` fits on the reference."""

    fit: Callable[[Any], FeatureMap]

    def __call__(self, name: str, reference: Any, budget: Budget) -> Fit | None:
        feature_map = self.fit(reference)
        return partial(
            calibrated_window, name, feature_map, reference, WINDOW_EVENTS, budget.ert, budget.warning_ert, budget.seed
        )


@dataclass(frozen=True)
class LabelTest(WindowTest):
    """A windowed test of labels, none for a reference of one label (a new language is the rate
    ``language_non_english``, watched already)."""

    def __call__(self, name: str, reference: Any, budget: Budget) -> Fit | None:
        return None if len(set(reference)) < 2 else super().__call__(name, reference, budget)


def labels(values: list) -> list:
    """A column of labels: the list itself."""
    return values


@dataclass(frozen=True)
class Input:
    """How a segment watches one input."""

    calibrator: Calibrator
    column: Callable[[list], Any]
    """Values (one per event that measured the input) as its detector takes them at once."""
    needed: int = MIN_REFERENCE
    """Reference values before its detector is calibrated."""
    keep: int | None = None
    """Most values a segment's reference keeps, the first ones (None: all)."""
    optional: bool = False
    """May be absent from an event (not measured for it); its share of the false-alarm budget is reserved."""
    scalar: bool = True
    """Its values are numbers: kept with the evidence and the report rows, and its reference values for the z-test
    that names features that also moved."""
    late_reference: bool = True
    """Without a detector after the segment's reference (too few values in it, or none), its values from the stream
    collect a reference of its own (False: only one the segment's reference began is completed)."""


INPUTS: dict[str, Input] = {
    name: Input(scalar_cusum, np.array, optional=feature.optional) for name, feature in FEATURES.items()
} | {
    "prompt_embedding": Input(  # the first embeddings only: a larger reference would not fit the 1 MB checkpoint
        WindowTest(FourierMap.fit), np.stack, 2 * WINDOW_EVENTS, keep=2 * WINDOW_EVENTS, optional=True, scalar=False
    ),
    "language": Input(LabelTest(CategoryMap.fit), labels, 2 * WINDOW_EVENTS, scalar=False, late_reference=False),
    "feature_profile": Input(WindowTest(ProfileMap.fit), np.stack, 2 * WINDOW_EVENTS, scalar=False),
}
"""Input name → how it is watched."""
SCALAR = Input(scalar_cusum, np.array)
"""An input that is not registered: a number, watched by a CUSUM."""
OPTIONAL = frozenset(name for name, spec in INPUTS.items() if spec.optional)
"""Inputs whose share of a segment's false-alarm budget is reserved whether they are measured yet or not."""

NOT_SCALAR = frozenset(name for name, spec in INPUTS.items() if not spec.scalar)
"""Inputs whose values are not numbers (an unregistered input is a number)."""


def scalars(inputs: Mapping[str, object]) -> dict[str, float]:
    """The scalar inputs of an event's ``inputs`` (its features), by name.

    >>> scalars({"latency_ms": 800.0, "language": "en"})
    {'latency_ms': 800.0}
    """
    return {name: value for name, value in inputs.items() if name not in NOT_SCALAR}  # type: ignore[misc]


def spec(name: str) -> Input:
    """How input ``name`` is watched (:data:`SCALAR` when it is not registered)."""
    return INPUTS.get(name, SCALAR)
