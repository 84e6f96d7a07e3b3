"""The gate benchmark's bound derivation: another encoder's bound reproduces MiniLM's verdicts, or stays the default."""

from __future__ import annotations

import numpy as np

from bench.gate import Batch, derive
from generators.quality import Fit, Views

EMPTY = Views(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0), np.zeros(0), None)


def fit(mmd2: float) -> Fit:
    return Fit(mmd2, 0.5, 0.8, 0.8, 1.0, EMPTY)


def test_a_bound_is_moved_only_where_the_default_loses_verdicts() -> None:
    found = [Batch("good", 1, [], []), Batch("good", 1, [], []), Batch("bad", 1, [], []), Batch("bad", 1, [], [])]
    found.append(Batch("bad", 2, [], []))  # an even round: never seen by the derivation
    minilm = [set(), set(), {"fidelity"}, {"fidelity"}, set()]
    assert derive(found, [fit(v) for v in (0.0, 0.01, 0.05, 0.06, 0.0)], minilm) == {}, "0.03 keeps every verdict"
    shifted = [fit(v) for v in (0.04, 0.05, 0.09, 0.10, 0.0)]
    assert derive(found, shifted, minilm) == {"max_mmd2": 0.07}, "half-way between the good and the bad"
