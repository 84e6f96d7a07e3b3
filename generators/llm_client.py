"""An async client for any OpenAI-compatible chat endpoint: vLLM in production, llama-cpp-python's server in tests.

One :class:`LLMClient` per event loop. Calls are bounded by a semaphore (``Endpoint.concurrency``), timed out
per attempt and retried by the ``openai`` SDK itself (``max_retries``: connection errors, timeouts, 408, 409,
429 and 5xx, exponential backoff with jitter, honouring ``Retry-After``). The SDK's retry is used rather than
tenacity because it already knows which statuses are transient and reads the server's ``Retry-After``; one
retry layer, not two.

Structured output is asked in the dialect the server speaks, chosen by ``Endpoint.structured_output``:

>>> response_format({"type": "object"}, StructuredOutput.JSON_OBJECT)
{'type': 'json_object', 'schema': {'type': 'object'}}
>>> response_format({"type": "object"}, StructuredOutput.JSON_SCHEMA)["json_schema"]["name"]
'reply'
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import openai

from generators.metrics import LLMMetrics

Message = dict[str, str]
UNKNOWN_MODEL = "unknown"
"""The ``model`` label of a failed ``/models`` look-up (no model name is known yet)."""


class StructuredOutput(StrEnum):
    """How a server takes a JSON schema for the reply."""

    JSON_SCHEMA = "json_schema"
    """OpenAI's and vLLM's ``{"type": "json_schema", "json_schema": {"name", "schema"}}``."""
    JSON_OBJECT = "json_object"
    """llama-cpp-python's ``{"type": "json_object", "schema": {...}}`` (it rejects ``json_schema``)."""


def response_format(schema: dict[str, Any], dialect: StructuredOutput) -> dict[str, Any]:
    """The ``response_format`` that asks for a reply matching ``schema`` in ``dialect``."""
    if dialect == StructuredOutput.JSON_OBJECT:
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": True}}


class LLMError(RuntimeError):
    """A chat completion that did not come back."""


class LLMUnavailable(LLMError, ConnectionError):
    """The endpoint could not be reached or kept failing after the retries."""

    def __init__(self, base_url: str, detail: str) -> None:
        super().__init__(f"LLM endpoint {base_url} unavailable: {detail}")
        self.base_url = base_url
        self.detail = detail


class LLMRequestRejected(LLMError, ValueError):
    """The endpoint refused the request (a 4xx other than 408, 409 and 429: bad model name, schema, key)."""

    def __init__(self, base_url: str, status: int, detail: str) -> None:
        super().__init__(f"LLM endpoint {base_url} refused the request: HTTP {status}: {detail}")
        self.base_url = base_url
        self.status = status
        self.detail = detail


class BudgetExhausted(LLMError):
    """The job's token budget is spent: no further call is made."""

    def __init__(self, used: int, limit: int) -> None:
        super().__init__(f"token budget exhausted: {used} of {limit} tokens used")
        self.used = used
        self.limit = limit


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach an OpenAI-compatible server."""

    base_url: str
    model: str | None = None
    """Model name sent with each call; None: the first one the endpoint lists under ``/models``."""
    api_key: str | None = None
    structured_output: StructuredOutput = StructuredOutput.JSON_SCHEMA
    concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 3

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must not be negative, got {self.max_retries}")


@dataclass
class TokenBudget:
    """Prompt + completion tokens a job may spend; checked before each call, so calls already in flight
    when it runs out finish and may overshoot it (by at most ``concurrency - 1`` calls).

    >>> budget = TokenBudget(100)
    >>> budget.charge(Usage(60, 50)); budget.exhausted, budget.used
    (True, 110)
    """

    limit: int | None
    used: int = 0

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"a token budget must be at least 1, got {self.limit}")

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.used >= self.limit

    def charge(self, usage: Usage) -> None:
        self.used += usage.total


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to ask for; ``schema`` asks for a JSON reply matching it."""

    messages: Sequence[Message]
    max_tokens: int
    temperature: float = 0.7
    seed: int | None = None
    schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class Completion:
    """A reply: its text, the text decoded as JSON when a schema was asked for (None if it is not JSON), usage."""

    text: str
    parsed: Any | None
    usage: Usage
    finish_reason: str | None
    model: str
    seed: int | None
    seconds: float


@dataclass
class LLMClient:
    """Chat completions from one endpoint, at most ``endpoint.concurrency`` at a time. Use it in ``async with``."""

    endpoint: Endpoint
    http_client: Any | None = None
    """An ``httpx.AsyncClient`` for the SDK to use (event hooks, proxies); None: the SDK's own."""
    metrics: LLMMetrics = field(default_factory=LLMMetrics.default, repr=False)
    """Where its calls are counted: the process's metrics unless given."""
    _sdk: openai.AsyncOpenAI = field(init=False, repr=False)
    _slots: asyncio.Semaphore = field(init=False, repr=False)
    _model: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._sdk = openai.AsyncOpenAI(
            base_url=self.endpoint.base_url,
            api_key=self.endpoint.api_key or "not-needed",
            timeout=self.endpoint.timeout_s,
            max_retries=self.endpoint.max_retries,
            http_client=self.http_client,
        )
        self._slots = asyncio.Semaphore(self.endpoint.concurrency)
        self._model = self.endpoint.model

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._sdk.close()

    async def model(self) -> str:
        """The model name sent with each call (asked of the endpoint once when not configured)."""
        if self._model is None:
            try:
                listed = await self._sdk.models.list()
            except (openai.APIConnectionError, openai.APIStatusError) as error:
                self.metrics.requests.labels(UNKNOWN_MODEL, "error").inc()
                raise self._failure(error) from error
            if not listed.data:
                raise LLMUnavailable(self.endpoint.base_url, "it lists no models under /models")
            self._model = listed.data[0].id
        return self._model

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float = 0.7,
        seed: int | None = None,
        schema: dict[str, Any] | None = None,
        budget: TokenBudget | None = None,
    ) -> Completion:
        """One chat completion; raises :class:`BudgetExhausted` instead of calling once ``budget`` is spent,
        :class:`LLMUnavailable` when the endpoint cannot answer, :class:`LLMRequestRejected` on a 4xx."""
        return await self.complete(ChatRequest(messages, max_tokens, temperature, seed, schema), budget)

    async def complete(self, request: ChatRequest, budget: TokenBudget | None = None) -> Completion:
        """:meth:`chat` for a :class:`ChatRequest`."""
        model = await self.model()
        extra = {"response_format": response_format(request.schema, self.endpoint.structured_output)}
        async with self._slots:
            if budget is not None and budget.exhausted:
                raise BudgetExhausted(budget.used, budget.limit or 0)
            started = time.perf_counter()
            self.metrics.in_flight.inc()
            try:
                reply = await self._sdk.chat.completions.create(
                    model=model,
                    messages=list(request.messages),  # type: ignore[arg-type]
                    max_tokens=request.max_tokens,
                    temperature=request.temperature,
                    seed=request.seed,
                    **(extra if request.schema is not None else {}),
                )
            except openai.APITimeoutError as error:
                self.metrics.requests.labels(model, "timeout").inc()
                raise self._failure(error) from error
            except (openai.APIConnectionError, openai.APIStatusError) as error:
                self.metrics.requests.labels(model, "error").inc()
                raise self._failure(error) from error
            finally:
                self.metrics.in_flight.dec()
            seconds = time.perf_counter() - started
        usage = Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens) if reply.usage else Usage(0, 0)
        self.metrics.requests.labels(model, "ok").inc()
        self.metrics.request_seconds.observe(seconds)
        self.metrics.tokens.labels(model, "prompt").inc(usage.prompt_tokens)
        self.metrics.tokens.labels(model, "completion").inc(usage.completion_tokens)
        if budget is not None:
            was_exhausted = budget.exhausted
            budget.charge(usage)
            if budget.exhausted and not was_exhausted:
                self.metrics.budget_exhausted.inc()
        choice = reply.choices[0]
        text = choice.message.content or ""
        return Completion(
            text=text,
            parsed=json_or_none(text) if request.schema is not None else None,
            usage=usage,
            finish_reason=choice.finish_reason,
            model=model,
            seed=request.seed,
            seconds=seconds,
        )

    async def complete_all(
        self, requests: Sequence[ChatRequest], budget: TokenBudget | None = None
    ) -> list[Completion | LLMError]:
        """Every request, at most ``concurrency`` at a time; results in request order, a failed call as its
        :class:`LLMError` (calls left when ``budget`` runs out as :class:`BudgetExhausted`)."""

        async def attempt(request: ChatRequest) -> Completion | LLMError:
            try:
                return await self.complete(request, budget)
            except LLMError as error:
                return error

        await self.model()  # fail once, early, when the endpoint is down
        return list(await asyncio.gather(*(attempt(r) for r in requests)))

    def _failure(self, error: openai.OpenAIError) -> LLMError:
        url = self.endpoint.base_url
        if isinstance(error, openai.APIStatusError):
            if error.status_code < 500 and error.status_code not in (408, 409, 429):
                return LLMRequestRejected(url, error.status_code, error.message)
            return LLMUnavailable(url, f"HTTP {error.status_code} after {self.endpoint.max_retries} retries")
        return LLMUnavailable(url, f"{type(error).__name__} after {self.endpoint.max_retries} retries: {error}")


def json_or_none(text: str) -> Any | None:
    """``text`` decoded as JSON, or None when it is not JSON (a truncated reply, say).

    >>> json_or_none('{"a": 1}'), json_or_none('{"a": ')
    ({'a': 1}, None)
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None
