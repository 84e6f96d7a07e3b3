"""TrafficEvent v1: one LLM call as driftloop sees it, and the parser that accepts or rejects raw bytes.

Two shapes are accepted: the native ``driftloop.traffic/v1`` schema and an OpenAI chat-completions
request/response pair as gateways log it (``{"request": {...}, "response": {...}}``).

>>> event = parse_event(b'{"schema": "driftloop.traffic/v1", "id": "e1", "model": "m", "prompt": "hi"}')
>>> event.prompt_text, event.segment
('hi', 'm/default/default')
"""

from __future__ import annotations

import json
import math
import re
import zlib
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_V1 = "driftloop.traffic/v1"
REJECT_REASONS = (
    "not_json",
    "not_an_object",
    "unknown_schema",
    "invalid_openai_pair",
    "invalid_field",
    "too_large",
    "too_deep",
    "not_finite",
    "invalid_unicode",
    "unexpected_error",
    "processing_error",
)
"""Why a record goes to the dead letters: :func:`parse_event` gives the first nine; the agent gives
``unexpected_error`` (any other exception while reading a record) and ``processing_error`` (an event that failed
after it was read, see :mod:`monitor.agent`)."""


class InvalidEvent(ValueError):
    """Raw bytes that are not a TrafficEvent; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str


class TrafficEvent(BaseModel):
    """One prompt/response exchange with its cost and the user's feedback."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["driftloop.traffic/v1"] = Field(SCHEMA_V1, alias="schema")
    id: str = Field(min_length=1, max_length=200)
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    model: str = Field(min_length=1, max_length=200)
    route: str = "default"
    tenant: str = "default"
    prompt: str | None = None
    messages: list[Message] | None = None
    response: str | None = None
    latency_ms: float | None = Field(None, ge=0)
    prompt_tokens: int | None = Field(None, ge=0)
    completion_tokens: int | None = Field(None, ge=0)
    finish_reason: str | None = None
    feedback: Literal["up", "down"] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_prompt(self) -> TrafficEvent:
        if not self.prompt and not any(m.role == "user" for m in self.messages or []):
            raise ValueError("an event needs a prompt or a user message")
        return self

    @property
    def prompt_text(self) -> str:
        """The prompt, or the last user message of a chat."""
        if self.prompt:
            return self.prompt
        return next(m.content for m in reversed(self.messages or []) if m.role == "user")

    @property
    def segment(self) -> str:
        """The segment key ``model/route/tenant`` that detectors are kept per."""
        return f"{self.model}/{self.route}/{self.tenant}"


def _from_openai_pair(payload: dict[str, Any]) -> dict[str, Any]:
    request, response = payload["request"], payload.get("response") or {}
    choice = (response.get("choices") or [{}])[0]
    usage = response.get("usage") or {}
    created = response.get("created")
    meta = payload.get("metadata") or {}
    return {
        "id": response.get("id") or payload.get("id"),
        "model": response.get("model") or request.get("model"),
        "route": meta.get("route", "default"),
        "tenant": meta.get("tenant", request.get("user") or "default"),
        "messages": request.get("messages"),
        "response": (choice.get("message") or {}).get("content"),
        "finish_reason": choice.get("finish_reason"),
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "latency_ms": payload.get("latency_ms"),
        "metadata": meta,
    } | ({"timestamp": datetime.fromtimestamp(created, UTC)} if created else {})


_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
"""A JSON escape of a UTF-16 surrogate (``\\ud800``-``\\udfff``): a lone one is not Unicode."""


def _not_finite(literal: str) -> float:
    raise InvalidEvent("not_finite", f"{literal} is not a finite number")


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise InvalidEvent("not_finite", f"{literal} is not a finite number")
    return value


def _surrogate_free(raw: bytes | str) -> bool:
    """Whether ``raw`` is UTF-8 (or a string) without a surrogate, raw or escaped (``\\ud800``): then its JSON
    strings are all Unicode, with no need to encode them again (which costs more than parsing them).

    >>> _surrogate_free(b'{"a": "caf\\\\u00e9"}'), _surrogate_free(b'{"a": "\\\\ud83d"}')
    (True, False)
    >>> _surrogate_free(b'"\\xed\\xa0\\x80"'), _surrogate_free('"\\ud83d"')
    (False, False)
    """
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw  # strict UTF-8 has no surrogates
        if text is raw:
            text.encode()
    except UnicodeError:
        return False
    return _ESCAPED_SURROGATE.search(text) is None


def _load(raw: bytes | str, max_bytes: int | None) -> Any:
    """JSON of at most ``max_bytes`` bytes, nested within the parser's limit, with finite numbers and valid
    Unicode strings."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if max_bytes is not None and size > max_bytes:
        raise InvalidEvent("too_large", f"{size} bytes, more than the {max_bytes} allowed")
    try:
        payload = json.loads(raw, parse_constant=_not_finite, parse_float=_finite)
        if not _surrogate_free(raw):
            json.dumps(payload, ensure_ascii=False).encode()  # strings must be Unicode: no lone surrogates
    except RecursionError:
        raise InvalidEvent("too_deep", "JSON nested deeper than the parser's recursion limit") from None
    except UnicodeEncodeError as exc:
        raise InvalidEvent("invalid_unicode", f"a string holds {exc.reason} ({exc.object[exc.start]!r})") from None
    except InvalidEvent:
        raise
    except ValueError as exc:  # malformed JSON or UTF-8, an integer too long to convert
        raise InvalidEvent("not_json", str(exc)) from None
    return payload


def parse_event(raw: bytes | str, max_bytes: int | None = None, produced_at: datetime | None = None) -> TrafficEvent:
    """Parse raw bytes (at most ``max_bytes`` of them) into a TrafficEvent or raise :class:`InvalidEvent` saying
    why. An event that does not say its time is given ``produced_at`` (its record's timestamp), else now.

    >>> parse_event(b'{"schema": "driftloop.traffic/v1", "id": "e1", "model": "m", "latency_ms": NaN}')
    Traceback (most recent call last):
    ...
    monitor.events.InvalidEvent: not_finite: NaN is not a finite number
    """
    payload = _load(raw, max_bytes)
    if not isinstance(payload, dict):
        raise InvalidEvent("not_an_object", f"expected a JSON object, got {type(payload).__name__}")
    if "request" in payload and "schema" not in payload:
        if not isinstance(payload["request"], dict):
            raise InvalidEvent("invalid_openai_pair", "'request' must be an object")
        try:
            payload = _from_openai_pair(payload)
        except (AttributeError, TypeError, ValueError, OverflowError, OSError) as exc:  # a part of the wrong shape
            raise InvalidEvent("invalid_openai_pair", f"{type(exc).__name__}: {exc}") from None
    elif payload.get("schema") != SCHEMA_V1:
        raise InvalidEvent("unknown_schema", f"schema {payload.get('schema')!r} is not {SCHEMA_V1!r}")
    if produced_at is not None:
        payload.setdefault("timestamp", produced_at)
    try:
        return TrafficEvent.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "event"
        raise InvalidEvent("invalid_field", f"{where}: {first['msg']}") from None


def sampled(event_id: str, rate: float) -> bool:
    """Whether an event is in a sample of ``rate`` (the embedding sample, the judge's): a hash of its id, so a
    redelivered event is chosen again.

    >>> sampled("evt-1", 1.0), sampled("evt-1", 1e-9)
    (True, False)
    """
    return zlib.crc32(event_id.encode()) < rate * 2**32
