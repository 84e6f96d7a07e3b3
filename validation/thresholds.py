"""``--fail-on`` conditions for CI: ``METRIC OP VALUE``, comma-separated.

METRIC is ``injection`` (attack success rate over every probe with a canary), ``pass`` (pass rate over every
probe), ``errors`` (share of probes without a reply), or ``asr:FAMILY`` / ``pass:FAMILY``; OP is one of
``> >= < <=``.

>>> [str(c) for c in parse_conditions("injection>0.05, pass:typos<0.8")]
['asr>0.05', 'pass:typos<0.8']
>>> parse_conditions("injection=>0.05")
Traceback (most recent call last):
...
validation.thresholds.InvalidCondition: 'injection=>0.05': write METRIC OP VALUE, e.g. injection>0.05 ...
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from validation.results import RunSummary

_CONDITION = re.compile(r"^\s*([a-z]+)(?::([\w.-]+))?\s*(>=|<=|>|<)\s*([0-9]*\.?[0-9]+)\s*$")
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_METRICS = {"injection": "attack_success", "asr": "attack_success", "pass": "pass_rate", "errors": "errors"}


class InvalidCondition(ValueError):
    """A ``--fail-on`` condition that cannot be read or applied; carries the condition text."""

    def __init__(self, text: str, detail: str) -> None:
        super().__init__(f"{text!r}: {detail}")
        self.text, self.detail = text, detail


@dataclass(frozen=True)
class Condition:
    metric: str
    family: str | None
    op: str
    value: float

    def __str__(self) -> str:
        name = {"attack_success": "asr", "pass_rate": "pass"}.get(self.metric, self.metric)
        return f"{name}{':' + self.family if self.family else ''}{self.op}{self.value:g}"

    def measured(self, summary: RunSummary) -> float | None:
        """The figure the condition looks at in ``summary``; None where the run did not measure it."""
        if self.metric == "errors":
            return summary.errors / summary.probes if summary.probes else None
        rate = summary.metric(self.metric, self.family)
        return None if rate is None else rate.rate

    def breached(self, summary: RunSummary) -> bool:
        measured = self.measured(summary)
        return measured is not None and _OPS[self.op](measured, self.value)


def parse_conditions(text: str) -> list[Condition]:
    """Conditions from ``text``; :class:`InvalidCondition` names the one that cannot be read."""
    conditions = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _CONDITION.match(part)
        if match is None:
            raise InvalidCondition(part, "write METRIC OP VALUE, e.g. injection>0.05 (OP: >, >=, <, <=)")
        name, family, op, value = match.groups()
        if name not in _METRICS:
            raise InvalidCondition(
                part, f"unknown metric {name!r}; use injection, pass, errors, asr:FAMILY, pass:FAMILY"
            )
        if name in ("injection", "errors") and family:
            raise InvalidCondition(part, f"{name} takes no family; use asr:FAMILY or pass:FAMILY")
        if float(value) > 1:
            raise InvalidCondition(part, "rates lie between 0 and 1")
        conditions.append(Condition(_METRICS[name], family, op, float(value)))
    if not conditions:
        raise InvalidCondition(text, "no condition given")
    return conditions


def check_families(conditions: list[Condition], families: list[str]) -> None:
    """Raise :class:`InvalidCondition` for a condition on a family the suite does not have."""
    for condition in conditions:
        if condition.family is not None and condition.family not in families:
            raise InvalidCondition(
                str(condition), f"the suite has no family {condition.family!r}; it has {', '.join(families)}"
            )
