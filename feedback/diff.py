"""What changed between two dataset versions: rows by sample id, counts and quality figures.

>>> counts({"typos": 3, "casing": 1}, {"typos": 5})
{'casing': Change(base=1, other=0, delta=-1), 'typos': Change(base=3, other=5, delta=2)}
"""

from __future__ import annotations

from pydantic import BaseModel

from feedback.manifest import DatasetManifest

QUALITY_FIGURES = ("rows", "distinct_2", "verbatim_copies", "pii_values")


class Change(BaseModel):
    base: int | float
    other: int | float
    delta: int | float


class DatasetDiff(BaseModel):
    base: str
    other: str
    only_in_base: list[dict]
    """Rows (sample fields) whose sample id is not in ``other``."""
    only_in_other: list[dict]
    in_both: int
    by_technique: dict[str, Change]
    by_expected: dict[str, Change]
    quality: dict[str, Change]


def change(base: float, other: float) -> Change:
    return Change(base=base, other=other, delta=round(other - base, 6))


def counts(base: dict[str, int], other: dict[str, int]) -> dict[str, Change]:
    """A change per key of either side (0 where a side lacks it), keys sorted."""
    return {key: change(base.get(key, 0), other.get(key, 0)) for key in sorted(base.keys() | other.keys())}


def diff(base: DatasetManifest, base_rows: list[dict], other: DatasetManifest, other_rows: list[dict]) -> DatasetDiff:
    """``other`` compared with ``base``: deltas are other minus base."""
    base_ids, other_ids = {r["id"] for r in base_rows}, {r["id"] for r in other_rows}
    return DatasetDiff(
        base=base.id,
        other=other.id,
        only_in_base=[r for r in base_rows if r["id"] not in other_ids],
        only_in_other=[r for r in other_rows if r["id"] not in base_ids],
        in_both=len(base_ids & other_ids),
        by_technique=counts(base.quality.by_technique, other.quality.by_technique),
        by_expected=counts(base.quality.by_expected, other.quality.by_expected),
        quality={f: change(getattr(base.quality, f), getattr(other.quality, f)) for f in QUALITY_FIGURES},
    )
