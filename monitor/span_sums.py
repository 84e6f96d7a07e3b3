"""Running sums of a segment's scalar inputs, marked every :data:`STRIDE` events: their means over a cause's span.

An incident names the features that also moved over the span of its cause (from the onset of its leading detector,
often a thousand events back), not only over the few recent events kept for evidence. The sums since the segment
began are kept, and a copy of them every :data:`STRIDE` events (the last :data:`MARKS`): the means from an onset are
the sums now less those of the last mark before it, so a span starts at most ``STRIDE - 1`` events early, and one
that began more than ``STRIDE · MARKS`` events ago is cut to the oldest mark. Sums that began mid-segment (a
checkpoint from before them restored) give the means over the events since they began.

>>> sums = SpanSums()
>>> for event in range(1, 1001):
...     sums.add({"refusal": float(event > 600)}, event)
>>> {name: (round(mean, 2), n) for name, (mean, n) in sums.means(since=601).items()}
{'refusal': (0.82, 488)}
>>> restored = SpanSums()  # restored at the 900th event from a checkpoint without sums
>>> for event in range(901, 1101):
...     restored.add({"refusal": 1.0}, event)
>>> restored.means(since=601)
{'refusal': (1.0, 200)}
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

STRIDE = 128
"""Events between marks."""
MARKS = 32
"""Marks kept: spans up to 4,096 events (the pickled state holds MARKS · 2 floats per input)."""


@dataclass
class SpanSums:
    """Sums and counts of each scalar input since the segment began (plain dicts: an event adds to them in a few
    microseconds), and their marks: (event, sums and counts as two rows, inputs in the order they first came)."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    marks: deque[tuple[int, np.ndarray]] = field(default_factory=lambda: deque(maxlen=MARKS))

    def add(self, values: Mapping[str, float], event: int) -> None:
        """Add ``values`` (input → number), the segment's ``event``-th event's."""
        sums, counts = self.sums, self.counts
        for name, value in values.items():
            sums[name] = sums.get(name, 0.0) + value
            counts[name] = counts.get(name, 0) + 1
        if event % STRIDE == 0:
            self.marks.append((event, self._totals()))

    def extend(self, columns: Mapping[str, tuple[np.ndarray, np.ndarray]], first: int, events: int) -> None:
        """Add the segment's events ``first`` to ``first + events - 1`` at once, as :meth:`add` one by one would:
        ``columns`` holds each input's positions among them (0: event ``first``) and its values there."""
        for name in columns:
            self.sums.setdefault(name, 0.0)
            self.counts.setdefault(name, 0)
        marks = np.arange(-(-first // STRIDE) * STRIDE, first + events, STRIDE)[-MARKS:]
        rows = np.repeat(self._totals()[None], len(marks), axis=0)
        for column, name in enumerate(self.sums):
            if name in columns:
                positions, values = columns[name]
                through = np.searchsorted(first + positions, marks, side="right")
                running = np.concatenate([[0.0], np.cumsum(values)])
                rows[:, 0, column] += running[through]
                rows[:, 1, column] += through
                self.sums[name] += float(running[-1])
                self.counts[name] += len(values)
        self.marks.extend(zip(marks.tolist(), rows, strict=True))

    def means(self, since: int) -> dict[str, tuple[float, int]]:
        """Each input's mean and count over the events from the ``since``-th (from the last mark before it; with
        none before it, from the oldest mark once some were dropped, else over all the sums hold)."""
        before = next((sums for at, sums in reversed(self.marks) if at < since), None)
        if before is None:
            before = self.marks[0][1] if len(self.marks) == self.marks.maxlen else np.zeros((2, 0))
        totals = self._totals()
        span = totals - np.pad(before, ((0, 0), (0, totals.shape[1] - before.shape[1])))
        return {
            name: (float(span[0, column] / span[1, column]), int(span[1, column]))
            for column, name in enumerate(self.sums)
            if span[1, column] > 0
        }

    def _totals(self) -> np.ndarray:
        return np.array([list(self.sums.values()), list(self.counts.values())], dtype=float).reshape(2, -1)
