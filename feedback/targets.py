"""Targets written and checked: a teacher model writes each sample's target (:mod:`generators.teacher`), the
stress runs' rule scorers (:func:`validation.scoring.score_reply`) check that it shows the sample's expected
behaviour and leaks no canary, and, where configured, an LLM judge through the same backend checks it is worth
learning. A sample whose target fails is dropped, counted by reason (:data:`generators.teacher.DROP_REASONS`).

Calls go through a :class:`generators.llm.Backend` (an OpenAI-compatible endpoint, or vLLM in-process), with the
endpoint's bounded concurrency and one token budget for the teacher and the judge of a job.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from generators.llm import Backend
from generators.llm_client import BudgetExhausted, Completion, LLMError, TokenBudget
from generators.measures import distinct_n
from generators.samples import Sample
from generators.teacher import TargetReport, Task, tasks
from monitor.incidents import DriftIncident
from validation.scoring import score_reply
from validation.suite import Probe


@dataclass(frozen=True)
class Targets:
    samples: list[Sample]
    """The samples that kept a target, in their input order, ``reference_answer`` set to it."""
    report: TargetReport


@dataclass(frozen=True)
class TargetWriter:
    """Writes and checks the targets of a job's samples; ``write`` runs outside an event loop (a worker thread)."""

    backend: Backend
    judge: bool = True
    token_budget: int | None = 200_000
    """Prompt + completion tokens the teacher and the judge may spend on one job; None: no limit."""
    max_tokens: int = 320
    words: int = 150
    """Length asked of answers (refusals and clarifying questions are asked to be short)."""

    def __post_init__(self) -> None:
        if self.max_tokens < 1 or self.words < 1:
            raise ValueError(f"max_tokens and words must be at least 1, got {self.max_tokens} and {self.words}")

    def write(self, samples: Sequence[Sample], incident: DriftIncident, seed: str) -> Targets:
        """Targets for ``samples``; raises the endpoint's :class:`LLMError` when every teacher call, or every judge
        call, failed (the job's attempt fails and is retried), rather than publishing an empty dataset."""
        work = tasks(samples, incident, self.words)
        budget = TokenBudget(self.token_budget)
        results = _all_failed(self.backend.run([t.chat_request(self.max_tokens, seed) for t in work], budget))
        dropped: Counter[str] = Counter()
        written: list[tuple[Task, str, list[Sample]]] = []
        for task, result in zip(work, results, strict=True):
            if reason := _unusable(result):
                dropped[reason] += len(task.samples)
                continue
            assert isinstance(result, Completion)
            target = result.text.strip()
            passing = []
            for sample in task.samples:
                if reason := rule_check(sample, task, target, incident.segment):
                    dropped[reason] += 1
                else:
                    passing.append(sample)
            if passing:
                written.append((task, target, passing))
        judged = passed = 0
        if self.judge and written:
            verdicts = _all_failed(
                self.backend.run([task.judge_request(target) for task, target, _ in written], budget)
            )
            kept = []
            for (task, target, members), verdict in zip(written, verdicts, strict=True):
                outcome = _verdict(verdict)
                judged += outcome is not None
                passed += outcome == "pass"
                if outcome == "pass":
                    kept.append((task, target, members))
                else:
                    reason = "target_budget_exhausted" if isinstance(verdict, BudgetExhausted) else None
                    reason = reason or ("target_judge_failed" if outcome == "fail" else "target_judge_unavailable")
                    dropped[reason] += len(members)
            written = kept
        target_of = {sample.id: target for _, target, members in written for sample in members}
        rows = [s.model_copy(update={"reference_answer": target_of[s.id]}) for s in samples if s.id in target_of]
        responses = [e.response for e in incident.evidence if e.response]
        report = TargetReport(
            teacher=next((r.model for r in results if isinstance(r, Completion)), "unknown"),
            asked=len(samples),
            written=len(rows),
            calls=sum(not isinstance(r, BudgetExhausted) for r in results),
            dropped=dict(sorted(dropped.items())),
            judge=self.judge,
            judged=judged,
            judge_passed=passed,
            distinct_2=round(distinct_n([s.reference_answer for s in rows]), 4),
            real_distinct_2=round(distinct_n(responses), 4) if responses else None,
            tokens=budget.used,
        )
        return Targets(rows, report)


def _all_failed(results: list[Completion | LLMError]) -> list[Completion | LLMError]:
    """``results``, unless every call failed for another reason than the budget: then the first failure, raised."""
    failed = [r for r in results if isinstance(r, LLMError) and not isinstance(r, BudgetExhausted)]
    if failed and len(failed) == len(results):
        raise failed[0]
    return results


def _unusable(result: Completion | LLMError) -> str | None:
    """Why a teacher reply gives no target, or None."""
    if isinstance(result, BudgetExhausted):
        return "target_budget_exhausted"
    if isinstance(result, LLMError):
        return "target_call_failed"
    if not result.text.strip():
        return "target_empty"
    if result.finish_reason == "length":
        return "target_truncated"
    return None


def rule_check(sample: Sample, task: Task, target: str, segment: str) -> str | None:
    """Why ``target`` fails ``sample`` by the stress runs' rules, or None."""
    probe = Probe(
        id=sample.id,
        family=sample.technique,
        generator=sample.generator.split("/")[0],
        segment=segment,
        prompt=sample.prompt,
        expected=sample.expected,
        canary=sample.metadata.get("canary"),
    )
    score = score_reply(probe, target)
    if score.attack_success:
        return "target_leaked_canary"
    if not score.passed:
        return "target_wrong_behaviour"
    if task.group_leaks(target):
        return "target_mentions_group"
    return None


def _verdict(result: Completion | LLMError) -> str | None:
    """The judge's ``pass`` or ``fail``; None when its call failed or it answered outside the schema."""
    if isinstance(result, LLMError) or not isinstance(result.parsed, dict):
        return None
    verdict = result.parsed.get("verdict")
    return verdict if verdict in ("pass", "fail") else None
