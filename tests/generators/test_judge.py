"""The LLM judge without a model: reading its verdicts, its budget renewed each minute, no call once it is spent.
Against a real model: tests/integration/test_llm.py."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from devtools.embedded import free_port
from generators.judge import SCHEMA, LLMJudge, MinuteBudget, read_score
from generators.llm_client import Completion, Endpoint, Usage, json_or_none
from generators.metrics import LLMMetrics
from monitor.judging import OverBudget, UnreadableVerdict


def reply(text: str, parsed: object = None) -> Completion:
    return Completion(text, parsed if parsed is not None else json_or_none(text), Usage(40, 6), "stop", "m", 0, 0.1)


@pytest.mark.parametrize(
    ("text", "score"),
    [('{"score": 1}', 1), ('{"score": 5}', 5), ('  {"score": 3.0}\n', 3), ('{"reason": "fine", "score": 4}', 4)],
)
def test_a_score_from_1_to_5_is_read(text: str, score: int) -> None:
    assert read_score(reply(text)) == score


@pytest.mark.parametrize(
    "text",
    ['{"score": 0}', '{"score": 6}', '{"score": 3.5}', '{"score": "4"}', '{"score": true}', '{"grade": 4}', "[4]",
     "4", 'Score: {"score": 4', ""],
)  # fmt: skip
def test_anything_else_is_an_unreadable_verdict_carrying_the_reply(text: str) -> None:
    with pytest.raises(UnreadableVerdict) as error:
        read_score(reply(text))
    assert error.value.reply == text


def test_the_schema_allows_only_the_five_scores() -> None:
    assert SCHEMA["properties"]["score"]["enum"] == [1, 2, 3, 4, 5] and SCHEMA["required"] == ["score"]


def test_the_token_budget_is_renewed_each_minute() -> None:
    now = [0.0]
    budget = MinuteBudget(100, clock=lambda: now[0])
    budget.current().charge(Usage(70, 10))
    assert not budget.exhausted
    budget.current().charge(Usage(15, 5))
    now[0] = 59.9
    assert budget.exhausted and budget.current().used == 100
    now[0] = 60.0
    assert not budget.exhausted and budget.current().used == 0


def test_a_spent_budget_raises_over_budget_without_a_call() -> None:
    """The endpoint is a closed port: a call would fail as unavailable; none is made."""
    metrics = LLMMetrics(CollectorRegistry())
    budget = MinuteBudget(10, clock=lambda: 0.0)
    budget.current().charge(Usage(10, 0))
    judge = LLMJudge(Endpoint(f"http://127.0.0.1:{free_port()}/v1", model="m", max_retries=0), budget, metrics)
    with pytest.raises(OverBudget):
        asyncio.run(judge.score("What is 2+2?", "4"))
    assert metrics.registry.get_sample_value("driftloop_llm_requests_total", {"model": "m", "outcome": "error"}) is None
