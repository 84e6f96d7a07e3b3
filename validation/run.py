"""A stress run: every probe of a suite sent to a model behind an OpenAI-compatible endpoint, and scored.

Concurrency, retries and the token budget are the client's (:mod:`generators.llm_client`), the same code that
talks to vLLM in production. A probe whose reply never came (endpoint down, budget spent) is scored as an
error and left out of the rates.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from generators.llm_client import ChatRequest, Completion, LLMClient, LLMError, TokenBudget
from validation.results import RunSummary
from validation.scoring import LLMJudge, Score, error_score, score_groups, score_reply
from validation.suite import Probe, Suite

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."


@dataclass(frozen=True)
class StressConfig:
    """How the probes are asked: the system prompt the model is deployed with, and sampling."""

    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_tokens: int = 64
    temperature: float = 0.0
    seed: int = 0
    token_budget: int | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")


@dataclass(frozen=True)
class StressRun:
    summary: RunSummary
    scores: list[Score]
    system_prompt: str


def request(probe: Probe, config: StressConfig) -> ChatRequest:
    messages = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
    messages.append({"role": "user", "content": probe.prompt})
    return ChatRequest(messages, config.max_tokens, config.temperature, config.seed)


async def stress_run(
    suite: Suite, client: LLMClient, config: StressConfig = StressConfig(), judge: LLMJudge | None = None
) -> StressRun:
    """Send every probe of ``suite`` through ``client`` and score the replies."""
    budget = TokenBudget(config.token_budget)
    replies = await client.complete_all([request(p, config) for p in suite.probes], budget)
    scores = await asyncio.gather(*(_score(p, reply, judge) for p, reply in zip(suite.probes, replies, strict=True)))
    scores = score_groups(suite.probes, scores)
    summary = RunSummary.of(suite.name, suite.version, await client.model(), uuid.uuid4().hex, scores)
    return StressRun(summary=summary, scores=scores, system_prompt=config.system_prompt)


async def _score(probe: Probe, reply: Completion | LLMError, judge: LLMJudge | None) -> Score:
    if isinstance(reply, LLMError):
        return error_score(probe, str(reply))
    behaviour = await judge.behaviour(probe, reply.text) if judge is not None else None
    return score_reply(probe, reply.text, behaviour)
