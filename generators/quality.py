"""The quality gate: figures computed for every job, and the thresholds a dataset must meet.

>>> from generators.samples import Expected, Sample
>>> rows = [Sample.make(f"question {i} about lists", "typos", Expected.ANSWER, "a", "g", "0") for i in range(10)]
>>> report = assess(rows, evidence_prompts=["question 1 about lists"])
>>> report.passed, report.verbatim_copies
(False, 1)
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel

from generators.samples import Sample
from monitor.redact import count_pii

MIN_ROWS = 10
MIN_DISTINCT_2 = 0.2


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Diversity across texts: distinct word n-grams of the batch over the sum of each text's distinct n-grams
    (1.0: no two texts share an n-gram; repetition inside one text is not penalised).

    >>> distinct_n(["a b c", "a b d"]), distinct_n(["a b a b", "c d"])
    (0.75, 1.0)
    """
    per_text = [{tuple(words[i : i + n]) for i in range(len(words) - n + 1)} for words in (t.split() for t in texts)]
    total = sum(len(grams) for grams in per_text)
    return len(set().union(*per_text)) / total if total else 0.0


class QualityReport(BaseModel):
    rows: int
    distinct_2: float
    verbatim_copies: int
    pii_values: int
    by_technique: dict[str, int]
    by_expected: dict[str, int]
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures


def assess(samples: list[Sample], evidence_prompts: list[str]) -> QualityReport:
    """Score a batch; ``failures`` lists every threshold it misses."""
    prompts = [s.prompt for s in samples]
    evidence = set(evidence_prompts)
    report = QualityReport(
        rows=len(samples),
        distinct_2=round(distinct_n(prompts), 4),
        verbatim_copies=sum(p in evidence for p in prompts),
        pii_values=sum(count_pii(s.prompt) + count_pii(s.reference_answer) for s in samples),
        by_technique=dict(Counter(s.technique for s in samples)),
        by_expected=dict(Counter(str(s.expected) for s in samples)),
        failures=[],
    )
    checks = {
        f"only {report.rows} rows (< {MIN_ROWS})": report.rows < MIN_ROWS,
        f"distinct-2 {report.distinct_2} < {MIN_DISTINCT_2}": report.distinct_2 < MIN_DISTINCT_2,
        f"{report.verbatim_copies} verbatim copies of real prompts": report.verbatim_copies > 0,
        f"{report.pii_values} PII values in the output": report.pii_values > 0,
    }
    report.failures = [reason for reason, failed in checks.items() if failed]
    return report
