"""Bounded segment cardinality: past a limit of distinct values of a dimension (route, tenant) per model, an event's
value folds into :data:`OVERFLOW`, so 100,000 tenants of a model make at most ``limit + 1`` segments of it.

The values known per model and dimension are those that got a place, first come first served, plus any whose
segment already has state (live or a checkpoint): they are not stored, so a restarted worker learns them again
from its checkpoints as their events come, and a value with a segment of its own keeps it across restarts. Each
set holds at most ``limit`` values, plus those recognised by their state; after a restart, new values may take the
free places before the known ones come back (each restart can add at most ``limit`` values with state per model).

>>> known = Cardinality()
>>> limits = {"tenant": 2}
>>> [known.fold("m", {"tenant": t}, limits, exists=lambda: False) for t in ("a", "b", "c", "a")]
[{}, {}, {'tenant': '_overflow'}, {}]
>>> known.fold("m", {"tenant": "d"}, limits, exists=lambda: True)  # its segment has state: it keeps it
{}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

OVERFLOW = "_overflow"
"""The value a route or tenant past its limit is monitored as (segment ``model/route/_overflow``)."""
DIMENSIONS = ("route", "tenant")


@dataclass
class Cardinality:
    """The values of each dimension that have places, per model (see the module docstring)."""

    known: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def fold(
        self, model: str, values: Mapping[str, str], limits: Mapping[str, int | None], exists: Callable[[], bool]
    ) -> dict[str, str]:
        """The dimensions of an event of ``model`` (``values``: dimension → value) that fold, each to
        :data:`OVERFLOW`; none when each value is known or finds a free place under its limit (``None``: no
        limit), or when the event's segment has state already (``exists()``, asked only for unknown values)."""
        places = {
            dimension: (self.known.setdefault((model, dimension), set()), limit)
            for dimension, limit in limits.items()
            if limit is not None
        }
        unknown = {dimension: place for dimension, place in places.items() if values[dimension] not in place[0]}
        if not unknown:
            return {}
        if exists():
            for dimension, (known, _) in unknown.items():
                known.add(values[dimension])
            return {}
        folded = {}
        for dimension, (known, limit) in unknown.items():
            if len(known) < limit:
                known.add(values[dimension])
            else:
                folded[dimension] = OVERFLOW
        return folded
