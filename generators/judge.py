"""An LLM judge of responses: a rubric asks the service's OpenAI-compatible endpoint for a 1–5 score as JSON.

The :class:`monitor.judging.Judge` of the monitor's sampled ``judge_score`` feature. Prompt and response are cut to
:data:`JUDGE_CHARS` and redacted (:func:`core.redact.redact`, in a thread) before they leave for the endpoint. The
calls go through :class:`generators.llm_client.LLMClient` (its concurrency, retries and metrics) and spend a token
budget renewed every minute (``DRIFTLOOP_JUDGE_TOKENS_PER_MINUTE``): the client's own
:class:`~generators.llm_client.TokenBudget`, checked before each call, so calls in flight when it runs out may
overshoot it by at most the client's concurrency less one.

>>> from generators.llm_client import Usage
>>> budget = MinuteBudget(100, clock=iter([0.0, 1.0, 61.0]).__next__)
>>> budget.current().charge(Usage(80, 30)); budget.exhausted, budget.exhausted
(True, False)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.redact import redact
from generators.llm_client import BudgetExhausted, Completion, Endpoint, LLMClient, Message, TokenBudget, json_or_none
from generators.metrics import LLMMetrics
from monitor.judging import OverBudget, UnreadableVerdict

JUDGE_CHARS = 1500
"""Characters of the prompt and of the response that the judge reads."""
MAX_TOKENS = 16
"""Reply length limit: ``{"score": 4}`` is about 6 tokens."""
RUBRIC = (
    "You grade an AI assistant's reply to a user's request. Rate how helpful and correct the reply is, from 1 to 5:\n"
    "1 = wrong, harmful, off-topic or empty; 2 = mostly unhelpful or with serious errors; 3 = partly helpful, or "
    "helpful with notable errors; 4 = helpful and correct with minor gaps; 5 = fully helpful and correct.\n"
    "A justified refusal of a harmful request counts as helpful. "
    'Answer only with JSON: {"score": N}, N an integer from 1 to 5.'
)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"score": {"type": "integer", "enum": [1, 2, 3, 4, 5]}},
    "required": ["score"],
}


def rubric_messages(prompt: str, response: str) -> list[Message]:
    """The chat asking for a score of ``response`` to ``prompt`` (both already cut and redacted)."""
    return [
        {"role": "system", "content": RUBRIC},
        {"role": "user", "content": f"Request:\n{prompt}\n\nReply:\n{response}\n\nScore the reply as JSON."},
    ]


def read_score(completion: Completion) -> int:
    """The score of a judge's reply: the integer 1–5 under ``score`` of its JSON; :class:`UnreadableVerdict` else.

    >>> from generators.llm_client import Usage
    >>> def reply(text: str) -> Completion:
    ...     return Completion(text, json_or_none(text), Usage(0, 0), "stop", "m", 0, 0.0)
    >>> read_score(reply('{"score": 4}')), read_score(reply(' {"score": 2.0} '))
    (4, 2)
    >>> read_score(reply('{"score": 7}'))
    Traceback (most recent call last):
    ...
    monitor.judging.UnreadableVerdict: no score from 1 to 5 in the judge's reply '{"score": 7}'
    """
    parsed = completion.parsed if completion.parsed is not None else json_or_none(completion.text.strip())
    score = parsed.get("score") if isinstance(parsed, dict) else None
    if isinstance(score, bool) or not isinstance(score, int | float) or score not in range(1, 6):
        raise UnreadableVerdict(completion.text)
    return int(score)


@dataclass
class MinuteBudget:
    """A :class:`~generators.llm_client.TokenBudget` of ``tokens``, a new one each minute (by ``clock``, seconds)."""

    tokens: int
    clock: Callable[[], float] = time.monotonic
    _budget: TokenBudget = field(init=False)
    _since: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._budget = TokenBudget(self.tokens)

    def current(self) -> TokenBudget:
        """This minute's budget."""
        now = self.clock()
        if self._since is None or now - self._since >= 60:
            self._budget, self._since = TokenBudget(self.tokens), now
        return self._budget

    @property
    def exhausted(self) -> bool:
        return self.current().exhausted


@dataclass
class LLMJudge:
    """Scores responses through ``endpoint`` within ``budget`` (a :class:`monitor.judging.Judge`)."""

    endpoint: Endpoint
    budget: MinuteBudget
    metrics: LLMMetrics = field(default_factory=LLMMetrics.default, repr=False)
    _client: LLMClient | None = field(init=False, default=None, repr=False)

    @property
    def exhausted(self) -> bool:
        return self.budget.exhausted

    async def score(self, prompt: str, response: str) -> float:
        """The 1–5 score of ``response`` to ``prompt``; :class:`OverBudget` without a call when the minute's tokens
        are spent, :class:`UnreadableVerdict` when the reply holds no score, the client's errors when it fails."""
        if self.exhausted:
            raise OverBudget(f"the judge's {self.budget.tokens} tokens of this minute are spent")
        if self._client is None:  # made on the event loop that runs it (one client per loop)
            self._client = LLMClient(self.endpoint, metrics=self.metrics)
        cut = await asyncio.to_thread(lambda: (redact(prompt[:JUDGE_CHARS]), redact(response[:JUDGE_CHARS])))
        try:
            completion = await self._client.chat(
                rubric_messages(*cut),
                max_tokens=MAX_TOKENS,
                temperature=0.0,
                seed=0,
                schema=SCHEMA,
                budget=self.budget.current(),
            )
        except BudgetExhausted as error:
            raise OverBudget(str(error)) from error
        return float(read_score(completion))

    async def close(self) -> None:
        """Close its client, if it made one."""
        if self._client is not None:
            await self._client.__aexit__()
            self._client = None
