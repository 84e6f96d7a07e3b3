"""The quality gate: screen a job's candidate samples, score what is kept against the drifted window, and
list every threshold the batch misses.

Screening removes, with a reason each: samples carrying PII (``pii``), verbatim copies of a real prompt
(``verbatim_copy``), near-duplicates of an earlier version's sample (``seen_in_version``) and of a sample
kept before them (``near_duplicate``). Near-duplicates are found by MinHash LSH over word shingles and only
within a technique: a casing and a whitespace variant of one prompt test different things. The kept samples
are then scored:

Embeddings are MiniLM's by default (:data:`ENCODER`; ``DRIFTLOOP_GATE_EMBEDDING_MODEL`` picks another), not the
monitor's faster ``tuned`` model: on the rule recipes' batches and known-bad ones (``python -m bench.gate``) MiniLM
fails more of the bad ones and puts them about twice as many SDs from the good ones. The default bounds were set on
MiniLM's scale; :data:`SCALES` holds another encoder's where the data asks for other values.

- fidelity: unbiased MMD² between sentence embeddings of the kept prompts and of the real window (RBF
  kernel, median-heuristic bandwidth) with a permutation p-value. The gate bounds MMD² rather than asking
  for a high p-value or a classifier AUC near 0.5: targeted samples (typos, jailbreak variants) are meant
  to differ from real traffic, so a two-sample test rejects them all alike and a classifier's AUC saturates
  at 1.0; MMD² keeps growing with the distance, which is what separates on-topic from off-topic batches.
- diversity: distinct-2 and mean pairwise cosine distance of the kept prompts (the real window's beside it);
- coverage: share of real prompts with a kept sample closer than the window's median nearest-neighbour
  distance.

Windows of fewer than ``MIN_WINDOW`` real prompts leave fidelity and coverage unmeasured, with a note.

>>> from generators.samples import Expected, Sample
>>> rows = [Sample.make(f"question {i} about lists", "typos", Expected.ANSWER, "a", "g", "0") for i in range(10)]
>>> gate = screen(rows, real_prompts=["question 1 about lists"])
>>> gate.report.passed, gate.report.verbatim_copies, gate.report.rejected
(False, 1, {'verbatim_copy': 1})
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel, Field

from core.embeddings import Model, embed
from core.redact import count_pii_all
from generators.counterfactual import RepresentationAudit, representation_audit
from generators.measures import cosine_distances, distinct_n, mean_pairwise_distance, mmd2
from generators.near_duplicates import NearDuplicates
from generators.samples import Sample
from generators.teacher import TargetReport

log = logging.getLogger(__name__)

ENCODER: Model = "minilm"
"""The sentence encoder of fidelity, diversity and coverage (see the module docstring)."""
SCALES: dict[Model, dict[str, float]] = {"minilm": {}, "tuned": {}, "static": {"min_coverage": 0.4688}}
"""Bounds on the embedding figures per encoder where its scale needs other values than the defaults (set on MiniLM's):
derived by ``python -m bench.gate`` as those that agree with MiniLM's verdicts on the most batches (for ``tuned`` no
bound does better than MiniLM's)."""
MIN_WINDOW = 2
"""Real prompts needed to measure fidelity and coverage (a nearest neighbour needs a second point)."""


class QualityThresholds(BaseModel):
    """What a batch must meet to be published; ``None`` turns a check off."""

    min_rows: int = Field(10, ge=0)
    min_distinct_2: float = Field(0.2, ge=0, le=1)
    min_pairwise_distance: float | None = Field(0.15, ge=0, le=2, description="mean cosine distance of kept prompts")
    max_mmd2: float | None = Field(0.03, ge=0, description="fidelity: largest MMD² to the real window")
    min_coverage: float | None = Field(0.25, ge=0, le=1, description="share of real prompts with a close sample")
    max_pii_share: float = Field(
        0.1, ge=0, le=1, description="largest share of candidates carrying PII (all such are removed)"
    )
    max_verbatim_share: float = Field(0.02, ge=0, le=1, description="largest share of verbatim copies (removed)")
    max_duplicate_share: float = Field(0.5, ge=0, le=1, description="largest share of near-duplicate candidates")
    near_duplicate_jaccard: float = Field(0.8, gt=0, le=1, description="word-shingle Jaccard of a near-duplicate")

    @classmethod
    def on(cls, encoder: Model) -> QualityThresholds:
        """The defaults, with the bounds on embedding figures set on ``encoder``'s scale (:data:`SCALES`)."""
        return cls(**SCALES[encoder])


class Seen(NamedTuple):
    """A sample of an earlier dataset version, as far as deduplication needs it."""

    version: str
    technique: str
    prompt: str


class Rejection(BaseModel):
    """A candidate removed by the gate (no text: it may carry the PII it was removed for)."""

    sample_id: str
    technique: str
    reason: str
    detail: str = ""


class QualityReport(BaseModel):
    rows: int
    """Samples kept."""
    distinct_2: float
    verbatim_copies: int
    pii_values: int
    by_technique: dict[str, int]
    by_expected: dict[str, int]
    failures: list[str]
    candidates: int = 0
    near_duplicates: int = 0
    seen_in_versions: int = 0
    real_prompts: int = 0
    encoder: Model = "minilm"
    """The sentence encoder of the embedding figures (older versions were all scored by MiniLM)."""
    mmd2: float | None = None
    mmd2_p_value: float | None = None
    pairwise_distance: float | None = None
    real_pairwise_distance: float | None = None
    coverage: float | None = None
    rejected: dict[str, int] = Field(default_factory=dict)
    rejections: list[Rejection] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    """Figures left unmeasured, and why."""
    representation_before: RepresentationAudit | None = None
    """Demographic group terms in the drifted window (the evidence)."""
    representation_after: RepresentationAudit | None = None
    """The same counts in the kept samples: counterfactual tuples balance them."""
    thresholds: QualityThresholds = Field(default_factory=QualityThresholds)
    targets: TargetReport | None = None
    """What the teacher wrote and dropped; None for an evaluation set (no LLM endpoint: no targets)."""

    @property
    def passed(self) -> bool:
        return not self.failures

    def figures(self) -> dict[str, float]:
        """The measured numeric figures by name (unmeasured ones left out), as exported to Prometheus."""
        names = ("rows", "candidates", "distinct_2", "verbatim_copies", "pii_values", "near_duplicates")
        names += ("seen_in_versions", "mmd2", "pairwise_distance", "coverage")
        found = {name: float(value) for name in names if (value := getattr(self, name)) is not None}
        if self.targets is not None:
            found["target_distinct_2"] = self.targets.distinct_2
            if (rate := self.targets.judge_pass_rate) is not None:
                found["target_judge_pass_rate"] = rate
        return found


@dataclass(frozen=True)
class Views:
    """What the quality card plots: embeddings of the real window and of the kept samples, nearest-neighbour
    distances of the real prompts (to each other and to the kept samples), and the coverage radius."""

    real: np.ndarray
    synthetic: np.ndarray
    real_to_real: np.ndarray
    real_to_synthetic: np.ndarray
    radius: float | None


@dataclass(frozen=True)
class Fit:
    """The figures of the kept samples' embeddings against the real window's, rounded as reported; fidelity and
    coverage are None (unmeasured) below :data:`MIN_WINDOW` real prompts or two kept samples."""

    mmd2: float | None
    mmd2_p_value: float | None
    pairwise_distance: float | None
    real_pairwise_distance: float | None
    coverage: float | None
    views: Views

    @classmethod
    def of(cls, real: np.ndarray, synthetic: np.ndarray) -> Fit:
        """The figures of ``synthetic`` (unit vectors of the kept prompts) against ``real`` (the window's)."""
        pairwise, real_pairwise = mean_pairwise_distance(synthetic), mean_pairwise_distance(real)
        if len(real) < MIN_WINDOW or len(synthetic) < 2:
            views = Views(real, synthetic, np.zeros(0), np.zeros(0), None)
            return cls(None, None, _round(pairwise), _round(real_pairwise), None, views)
        statistic, p_value = mmd2(synthetic, real)
        between = cosine_distances(real, real)
        np.fill_diagonal(between, np.inf)
        real_to_real = between.min(axis=1)
        real_to_synthetic = cosine_distances(real, synthetic).min(axis=1)
        radius = float(np.median(real_to_real))
        coverage = round(float((real_to_synthetic < radius).mean()), 4)
        views = Views(real, synthetic, real_to_real, real_to_synthetic, radius)
        return cls(round(statistic, 4), round(p_value, 4), _round(pairwise), _round(real_pairwise), coverage, views)


@dataclass(frozen=True)
class Gate:
    report: QualityReport
    kept: list[Sample]
    views: Views


def real_pii(samples: Sequence[Sample]) -> list[int]:
    """Personal-data values in each sample's prompt and reference answer, leaving out the surrogates that the
    privacy generator planted and listed in ``metadata["surrogates"]`` (one per line); the detector runs over all
    the texts in batches (:func:`core.redact.count_pii_all`).

    >>> from generators.samples import Expected
    >>> planted = {"surrogates": "ann@example.org"}
    >>> ann = Sample.make("mail ann@example.org", "t", Expected.ANSWER, "", "g", "0", metadata=planted)
    >>> real_pii([ann, Sample.make("mail bob@corp.com", "t", Expected.ANSWER, "", "g", "0")])
    [0, 1]
    """
    texts = []
    for sample in samples:
        pair = [sample.prompt, sample.reference_answer]
        for surrogate in filter(None, sample.metadata.get("surrogates", "").splitlines()):
            pair = [text.replace(surrogate, " ") for text in pair]
        texts += pair
    counts = count_pii_all(texts)
    return [prompt + answer for prompt, answer in zip(counts[::2], counts[1::2], strict=True)]


def _screen_one(
    sample: Sample, pii: int, real: set[str], earlier: NearDuplicates, batch: NearDuplicates
) -> tuple[str, str] | None:
    """The first reason to remove ``sample``, which carries ``pii`` values (reason, detail), or None to keep it."""
    if pii:
        return "pii", f"{pii} PII values"
    if sample.prompt.strip() in real:
        return "verbatim_copy", "a real prompt of the window"
    if seen := earlier.match(sample.technique, sample.prompt):
        return "seen_in_version", seen.split(":")[0]
    if "pair_id" not in sample.metadata and (twin := batch.match(sample.technique, sample.prompt)):
        return "near_duplicate", twin  # counterfactual tuples are near-duplicates by design: kept whole
    return None


@dataclass(frozen=True)
class Screened:
    """What screening keeps of a batch, what it removes and why, and the PII values it found in the candidates."""

    kept: list[Sample]
    rejections: list[Rejection]
    pii_values: int


def screened(
    samples: Sequence[Sample], real_prompts: Sequence[str], earlier: Iterable[Seen], thresholds: QualityThresholds
) -> Screened:
    """Remove from ``samples`` those carrying PII, copying a prompt of ``real_prompts``, or near-duplicating a
    sample of ``earlier`` versions or one kept before them."""
    real_set = {p.strip() for p in real_prompts}
    seen, batch = NearDuplicates(thresholds.near_duplicate_jaccard), NearDuplicates(thresholds.near_duplicate_jaccard)
    for number, sample in enumerate(earlier):
        seen.add(f"{sample.version}:{number}", sample.technique, sample.prompt)
    kept: list[Sample] = []
    rejections: list[Rejection] = []
    pii = real_pii(samples)
    for sample, values in zip(samples, pii, strict=True):
        if found := _screen_one(sample, values, real_set, seen, batch):
            reason, detail = found
            rejections.append(Rejection(sample_id=sample.id, technique=sample.technique, reason=reason, detail=detail))
            log.info("gate removed sample %s (%s): %s %s", sample.id, sample.technique, reason, detail)
        else:
            batch.add(sample.id, sample.technique, sample.prompt)
            kept.append(sample)
    return Screened(kept, rejections, sum(pii))


def screen(
    samples: Sequence[Sample],
    real_prompts: Sequence[str],
    earlier: Iterable[Seen] = (),
    thresholds: QualityThresholds | None = None,
    encoder: Model = ENCODER,
) -> Gate:
    """Screen ``samples``, score the kept ones against ``real_prompts`` (the drifted window) with the embeddings
    of ``encoder`` and check ``thresholds`` (by default those set on that encoder's scale); ``earlier`` are the
    samples of earlier versions to deduplicate against."""
    thresholds = thresholds or QualityThresholds.on(encoder)
    result = screened(samples, real_prompts, earlier, thresholds)
    prompts = [s.prompt for s in result.kept]
    fit = Fit.of(embed(list(real_prompts), encoder), embed(prompts, encoder))
    report = _report(samples, result, prompts, list(real_prompts), fit, thresholds, encoder)
    return Gate(report=report, kept=result.kept, views=fit.views)


def _report(
    candidates: Sequence[Sample],
    result: Screened,
    prompts: list[str],
    real_prompts: list[str],
    fit: Fit,
    thresholds: QualityThresholds,
    encoder: Model,
) -> QualityReport:
    rejected = Counter(r.reason for r in result.rejections)
    report = QualityReport(
        rows=len(result.kept),
        candidates=len(candidates),
        distinct_2=round(distinct_n(prompts), 4),
        verbatim_copies=rejected["verbatim_copy"],
        pii_values=result.pii_values,
        near_duplicates=rejected["near_duplicate"],
        seen_in_versions=rejected["seen_in_version"],
        real_prompts=len(real_prompts),
        encoder=encoder,
        mmd2=fit.mmd2,
        mmd2_p_value=fit.mmd2_p_value,
        pairwise_distance=fit.pairwise_distance,
        real_pairwise_distance=fit.real_pairwise_distance,
        coverage=fit.coverage,
        by_technique=dict(Counter(s.technique for s in result.kept)),
        by_expected=dict(Counter(str(s.expected) for s in result.kept)),
        rejected=dict(sorted(rejected.items())),
        rejections=result.rejections,
        failures=[],
        thresholds=thresholds,
        representation_before=representation_audit(real_prompts),
        representation_after=representation_audit(prompts),
    )
    if fit.mmd2 is None:
        report.notes.append(
            f"fidelity and coverage not measured: {len(fit.views.real)} real prompts and {len(fit.views.synthetic)} "
            f"kept samples (need {MIN_WINDOW} and 2)"
        )
    report.failures = failures(report, thresholds)
    return report


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def failures(report: QualityReport, thresholds: QualityThresholds) -> list[str]:
    """Every threshold ``report`` misses, as a sentence; unmeasured figures and unset thresholds pass."""
    t = thresholds
    pii_samples = report.rejected.get("pii", 0)
    duplicate_share, verbatim_share, pii_share = (
        (report.near_duplicates / n, report.verbatim_copies / n, pii_samples / n)
        if (n := report.candidates)
        else (0.0, 0.0, 0.0)
    )
    checks = {
        f"only {report.rows} rows kept (< {t.min_rows})": report.rows < t.min_rows,
        f"distinct-2 {report.distinct_2} < {t.min_distinct_2}": report.distinct_2 < t.min_distinct_2,
        f"{report.verbatim_copies} verbatim copies of real prompts ({verbatim_share:.0%})": (
            verbatim_share > t.max_verbatim_share
        ),
        f"{pii_samples} candidates carry PII ({report.pii_values} values, {pii_share:.0%})": pii_share
        > t.max_pii_share,
        f"{duplicate_share:.0%} of the candidates are near-duplicates (> {t.max_duplicate_share:.0%})": (
            duplicate_share > t.max_duplicate_share
        ),
    }
    return [reason for reason, failed in checks.items() if failed] + list(embedding_misses(report, t).values())


def embedding_misses(figures: QualityReport | Fit, thresholds: QualityThresholds) -> dict[str, str]:
    """The checks on embedding figures that ``figures`` miss (``fidelity``, ``diversity``, ``coverage``), each with
    its sentence; unmeasured figures and unset thresholds pass."""
    t = thresholds
    checks = {
        "diversity": (
            f"mean pairwise distance {figures.pairwise_distance} < {t.min_pairwise_distance}",
            _below(figures.pairwise_distance, t.min_pairwise_distance),
        ),
        "fidelity": (
            f"fidelity: MMD² {figures.mmd2} to the drifted window > {t.max_mmd2}",
            _below(t.max_mmd2, figures.mmd2),
        ),
        "coverage": (f"coverage {figures.coverage} < {t.min_coverage}", _below(figures.coverage, t.min_coverage)),
    }
    return {check: reason for check, (reason, failed) in checks.items() if failed}


def _below(value: float | None, bound: float | None) -> bool:
    return value is not None and bound is not None and value < bound


def assess(
    samples: Sequence[Sample],
    evidence_prompts: Sequence[str],
    earlier: Iterable[Seen] = (),
    thresholds: QualityThresholds | None = None,
) -> QualityReport:
    """The report of :func:`screen`, for callers that keep no samples."""
    return screen(samples, evidence_prompts, earlier, thresholds).report
