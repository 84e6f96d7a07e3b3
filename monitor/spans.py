"""OpenTelemetry GenAI spans as traffic events: what an OTLP trace export says about each LLM call.

A span is a GenAI span when it carries a ``gen_ai.*`` attribute (the GenAI semantic conventions, OpenLLMetry) or
``openinference.span.kind = LLM`` (OpenInference). Of those, the model calls (operation ``chat``,
``text_completion``, ``generate_content`` or none named) become :class:`~monitor.events.TrafficEvent`\\ s. Prompts and
completions are read, first found first, from ``gen_ai.system_instructions``/``gen_ai.input.messages``/
``gen_ai.output.messages`` (attributes or span-event attributes), the older ``gen_ai.content.prompt``/
``gen_ai.content.completion`` and per-message span events, OpenLLMetry's ``gen_ai.prompt.N.*``/
``gen_ai.completion.N.*``, OpenInference's ``llm.input_messages.N.message.*``/``llm.output_messages.N.message.*``,
then ``input.value``/``output.value`` (an OpenAI request and response when their mime type is JSON).

>>> from opentelemetry.proto.trace.v1.trace_pb2 import Span
>>> from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
>>> span = Span(trace_id=bytes(16), span_id=bytes.fromhex("00000000000000ab"), start_time_unix_nano=10**18,
...             end_time_unix_nano=10**18 + 250_000_000, attributes=[
...     KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="gpt-4o")),
...     KeyValue(key="gen_ai.prompt.0.role", value=AnyValue(string_value="user")),
...     KeyValue(key="gen_ai.prompt.0.content", value=AnyValue(string_value="Hello?"))])
>>> event = span_event(span, {}, SegmentAttributes(route=("app.route",), tenant=()))
>>> event.model, event.prompt_text, event.latency_ms, event.segment
('gpt-4o', 'Hello?', 250.0, 'gpt-4o/default/default')
>>> span_event(Span(name="GET /"), {}, SegmentAttributes(route=(), tenant=())) is None
True
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span
from pydantic import ValidationError

from monitor.events import TrafficEvent

MODEL_CALLS = frozenset({"chat", "text_completion", "generate_content", "completion"})
"""Operations that are one call of a model (``completion``: OpenLLMetry's ``llm.request.type``)."""
ROLES = {"system": "system", "user": "user", "assistant": "assistant", "tool": "tool", "developer": "developer"}
ROLES |= {"model": "assistant", "ai": "assistant", "human": "user", "function": "tool"}
"""Roles as instrumentations spell them → the roles of :class:`~monitor.events.Message`; others are left out."""
MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_INDEXED = re.compile(r"^(?P<prefix>.+?)\.(?P<index>\d+)\.(?P<field>.+)$")


class SpanOutcome(StrEnum):
    """What became of a span: an event, or why not (the last two are reported to the sender as rejected)."""

    accepted = "accepted"
    not_genai = "not_genai"
    other_operation = "other_operation"
    no_prompt = "no_prompt"
    invalid = "invalid"


REJECTED = frozenset({SpanOutcome.no_prompt, SpanOutcome.invalid})


class UnusableSpan(ValueError):
    """A GenAI model-call span that makes no valid traffic event; ``outcome`` says why."""

    def __init__(self, outcome: SpanOutcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome


@dataclass(frozen=True)
class SegmentAttributes:
    """Attribute names whose first present value (span, then resource) is the event's route, and its tenant."""

    route: Sequence[str]
    tenant: Sequence[str]


@dataclass
class Mapped:
    """Events made from an export request, spans counted by outcome, and a reason per rejected span."""

    events: list[TrafficEvent]
    outcomes: dict[SpanOutcome, int]
    reasons: list[str]

    @property
    def rejected(self) -> int:
        return sum(count for outcome, count in self.outcomes.items() if outcome in REJECTED)


def map_spans(resource_spans: Iterable[ResourceSpans], segments: SegmentAttributes) -> Mapped:
    """Every span of an export request, as an event or an outcome."""
    mapped = Mapped([], dict.fromkeys(SpanOutcome, 0), [])
    for resource_span in resource_spans:
        resource = attributes(resource_span.resource.attributes)
        for scope_span in resource_span.scope_spans:
            for span in scope_span.spans:
                try:
                    event = span_event(span, resource, segments)
                except UnusableSpan as unusable:
                    mapped.outcomes[unusable.outcome] += 1
                    mapped.reasons.append(f"span {span.span_id.hex()}: {unusable}")
                    continue
                if event is None:
                    outcome = SpanOutcome.other_operation if is_genai(attributes(span.attributes)) else None
                    mapped.outcomes[outcome or SpanOutcome.not_genai] += 1
                else:
                    mapped.events.append(event)
                    mapped.outcomes[SpanOutcome.accepted] += 1
    return mapped


def is_genai(attrs: Mapping[str, Any]) -> bool:
    """Whether span attributes are those of a GenAI span (of any operation)."""
    return attrs.get("openinference.span.kind") == "LLM" or any(key.startswith("gen_ai.") for key in attrs)


def span_event(span: Span, resource: Mapping[str, Any], segments: SegmentAttributes) -> TrafficEvent | None:
    """The traffic event of a GenAI model-call span; None for any other span; :class:`UnusableSpan` for a model
    call without a prompt or whose values make no valid event."""
    attrs = attributes(span.attributes)
    if not is_genai(attrs):
        return None
    operation = _first(attrs, "gen_ai.operation.name", "llm.request.type")
    if operation is not None and operation not in MODEL_CALLS:
        return None
    events = [(event.name, attributes(event.attributes)) for event in span.events]
    messages = _input_messages(attrs, events)
    prompt = None if messages else _text_value(attrs, "input")
    if not prompt and not any(m["role"] == "user" for m in messages):
        raise UnusableSpan(SpanOutcome.no_prompt, "no prompt in the span (is content capture on?)")
    response, output_finish = _output(attrs, events)
    reasons = attrs.get("gen_ai.response.finish_reasons")
    system = _first(attrs, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    fields = {
        "id": f"{span.trace_id.hex()}-{span.span_id.hex()}",
        "timestamp": datetime.fromtimestamp(start / 1e9, UTC) if start else datetime.now(UTC),
        "model": _first(attrs, "gen_ai.response.model", "gen_ai.request.model", "llm.model_name") or "unknown",
        "route": str(_first(attrs, *segments.route) or _first(resource, *segments.route) or "default"),
        "tenant": str(_first(attrs, *segments.tenant) or _first(resource, *segments.tenant) or "default"),
        "prompt": prompt,
        "messages": messages or None,
        "response": response,
        "latency_ms": (end - start) / 1e6 if start and end >= start else None,
        "prompt_tokens": _first(
            attrs, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"
        ),
        "completion_tokens": _first(
            attrs, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion"
        ),
        "finish_reason": (reasons[0] if isinstance(reasons, list) and reasons else None)
        or _first(attrs, "gen_ai.completion.0.finish_reason", "llm.finish_reason")
        or output_finish,
        "metadata": _metadata(span, resource, attrs, system, operation),
    }
    try:
        return TrafficEvent.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "event"
        raise UnusableSpan(SpanOutcome.invalid, f"{where}: {first['msg']}") from None


def attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """OTLP key-values as a dict of Python values (arrays as lists, key-value lists as dicts)."""
    return {pair.key: value(pair.value) for pair in pairs}


def value(any_value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a Python value (bytes as hex, so that every value is JSON)."""
    kind = any_value.WhichOneof("value")
    if kind == "bytes_value":
        return any_value.bytes_value.hex()
    if kind == "array_value":
        return [value(item) for item in any_value.array_value.values]
    if kind == "kvlist_value":
        return attributes(any_value.kvlist_value.values)
    return getattr(any_value, kind) if kind else None


def _first(attrs: Mapping[str, Any], *names: str) -> Any:
    """The value of the first of ``names`` that ``attrs`` holds (not None, not "")."""
    for name in names:
        found = attrs.get(name)
        if found is not None and found != "":
            return found
    return None


def _metadata(
    span: Span, resource: Mapping[str, Any], attrs: Mapping[str, Any], system: Any, operation: Any
) -> dict[str, Any]:
    found = {
        "source": "otlp",
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "service": resource.get("service.name"),
        "system": system,
        "operation": operation,
        "request_model": _first(attrs, "gen_ai.request.model"),
        "response_id": _first(attrs, "gen_ai.response.id"),
    }
    return {key: val for key, val in found.items() if val is not None}


def _input_messages(attrs: Mapping[str, Any], events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, str]]:
    system = _parts_messages(_json(attrs.get("gen_ai.system_instructions")), role="system")
    for source in (  # each read only when those before it held no message
        lambda: _parts_messages(_json(attrs.get("gen_ai.input.messages"))),
        lambda: _parts_messages(_json(_from_events(events, "gen_ai.input.messages"))),
        lambda: _openai_messages(_json(_from_events(events, "gen_ai.prompt", "gen_ai.content.prompt"))),
        lambda: [_message(role, e.get("content")) for name, e in events if (role := MESSAGE_EVENTS.get(name))],
        lambda: [_message(m.get("role"), m.get("content")) for m in _indexed(attrs, "gen_ai.prompt")],
        lambda: [
            _message(m.get("message.role"), m.get("message.content")) for m in _indexed(attrs, "llm.input_messages")
        ],
        lambda: _openai_messages((_json_value(attrs, "input") or {}).get("messages")),
    ):
        messages = [m for m in source() if m]
        if messages:
            return system + messages
    return []


def _output(attrs: Mapping[str, Any], events: list[tuple[str, dict[str, Any]]]) -> tuple[str | None, str | None]:
    """The completion's text and the finish reason its message carries."""
    for source in (  # each read only when those before it held no text
        lambda: _json(attrs.get("gen_ai.output.messages")),
        lambda: _json(_from_events(events, "gen_ai.output.messages")),
        lambda: _json(_from_events(events, "gen_ai.completion", "gen_ai.content.completion")),
        lambda: [
            e.get("message") if isinstance(e.get("message"), dict) else e for n, e in events if n == "gen_ai.choice"
        ],
        lambda: _indexed(attrs, "gen_ai.completion"),
        lambda: [{"content": m.get("message.content")} for m in _indexed(attrs, "llm.output_messages")],
        lambda: _choices((_json_value(attrs, "output") or {}).get("choices")),
    ):
        output = source()
        for message in output if isinstance(output, list) else []:
            if isinstance(message, dict) and (text := _text(message.get("parts", message.get("content")))):
                return text, message.get("finish_reason")
    text = _text_value(attrs, "output")
    return text, None


def _choices(raw: Any) -> list[Any]:
    """The messages of an OpenAI response's ``choices``."""
    return [choice.get("message") for choice in raw if isinstance(choice, dict)] if isinstance(raw, list) else []


def _from_events(events: list[tuple[str, dict[str, Any]]], attribute: str, name: str | None = None) -> Any:
    return next((e[attribute] for n, e in events if attribute in e and (name is None or n == name)), None)


def _indexed(attrs: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``prefix.N.field`` attributes as a list of ``{field: value}`` in the order of N."""
    found: dict[int, dict[str, Any]] = {}
    for key, val in attrs.items():
        match = _INDEXED.match(key) if key.startswith(prefix) else None
        if match and match["prefix"] == prefix:
            found.setdefault(int(match["index"]), {})[match["field"]] = val
    return [found[index] for index in sorted(found)]


def _json(raw: Any) -> Any:
    """A JSON-encoded attribute decoded; other values as they are; None for text that is not JSON."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _json_value(attrs: Mapping[str, Any], which: str) -> dict[str, Any] | None:
    """OpenInference's ``input.value``/``output.value`` as an object when its mime type is JSON."""
    if attrs.get(f"{which}.mime_type") != "application/json":
        return None
    decoded = _json(attrs.get(f"{which}.value"))
    return decoded if isinstance(decoded, dict) else None


def _text_value(attrs: Mapping[str, Any], which: str) -> str | None:
    """OpenInference's ``input.value``/``output.value`` when it is plain text."""
    raw = attrs.get(f"{which}.value")
    return raw if isinstance(raw, str) and raw and attrs.get(f"{which}.mime_type") != "application/json" else None


def _parts_messages(raw: Any, role: str | None = None) -> list[dict[str, str]]:
    """Messages of the GenAI conventions (``{"role", "parts": [{"type": "text", "content"}]}``), or, with ``role``,
    a list of parts as one message of that role."""
    if not isinstance(raw, list):
        return []
    if role is not None:
        return [m for m in [_message(role, _text(raw))] if m]
    return [m for m in (_message(i.get("role"), _text(i.get("parts"))) for i in raw if isinstance(i, dict)) if m]


def _openai_messages(raw: Any) -> list[dict[str, str]]:
    """OpenAI chat messages (``{"role", "content"}``, content a string or a list of parts)."""
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    items = raw if isinstance(raw, list) else []
    return [m for m in (_message(i.get("role"), _text(i.get("content"))) for i in items if isinstance(i, dict)) if m]


def _message(role: Any, content: Any) -> dict[str, str] | None:
    text = _text(content)
    mapped = ROLES.get(str(role).lower()) if role else None
    return {"role": mapped, "content": text} if mapped and text else None


def _text(content: Any) -> str | None:
    """The text of a message's content: a string, or the text parts of a list joined by newlines."""
    if isinstance(content, str):
        return content or None
    if isinstance(content, list):
        texts = [p.get("content") or p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        joined = "\n".join(t for t in texts if isinstance(t, str) and t)
        return joined or None
    return None
