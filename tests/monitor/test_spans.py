"""GenAI spans as traffic events, for each way instrumentations carry a call (attributes, span events, indexed
messages, raw input/output values), and the spans that make none."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from monitor.spans import SegmentAttributes, SpanOutcome, UnusableSpan, map_spans, span_event

SEGMENTS = SegmentAttributes(route=("driftloop.route", "service.name"), tenant=("driftloop.tenant",))
START = 1_700_000_000_000_000_000


def any_value(value: object) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list | tuple):
        return AnyValue(array_value=ArrayValue(values=[any_value(item) for item in value]))
    return AnyValue(string_value=str(value))


def pairs(attributes: dict[str, object]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def make_span(attributes: dict[str, object], events: tuple[tuple[str, dict[str, object]], ...] = ()) -> Span:
    return Span(
        trace_id=bytes.fromhex("5b8efff798038103d269b633813fc60c"),
        span_id=bytes.fromhex("eee19b7ec3c1b174"),
        name="chat",
        start_time_unix_nano=START,
        end_time_unix_nano=START + 1_500_000_000,
        attributes=pairs(attributes),
        events=[Span.Event(name=name, attributes=pairs(attrs)) for name, attrs in events],
    )


def test_latest_genai_conventions_with_content_on_the_span() -> None:
    span = make_span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.response.id": "chatcmpl-1",
            "gen_ai.response.finish_reasons": ["length"],
            "gen_ai.usage.input_tokens": 19,
            "gen_ai.usage.output_tokens": 8,
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "Say hi"}, {"type": "image", "uri": "x"}]}]
            ),
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "Hi!"}], "finish_reason": "length"}]
            ),
            "driftloop.tenant": "acme",
        }
    )
    event = span_event(span, {"service.name": "support-bot"}, SEGMENTS)
    assert event is not None
    assert [(m.role, m.content) for m in event.messages or []] == [("system", "Be brief."), ("user", "Say hi")]
    assert (event.model, event.route, event.tenant) == ("gpt-4o-2024-08-06", "support-bot", "acme")
    assert (event.response, event.finish_reason, event.latency_ms) == ("Hi!", "length", 1500.0)
    assert (event.prompt_tokens, event.completion_tokens) == (19, 8)
    assert event.id == "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174"
    assert event.metadata == {
        "source": "otlp",
        "trace_id": "5b8efff798038103d269b633813fc60c",
        "span_id": "eee19b7ec3c1b174",
        "service": "support-bot",
        "system": "openai",
        "operation": "chat",
        "request_model": "gpt-4o",
        "response_id": "chatcmpl-1",
    }


def test_openinference_messages_and_token_counts() -> None:
    span = make_span(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "smollm2",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": "second",
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "first",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "answer",
            "llm.token_count.prompt": 7,
            "llm.token_count.completion": 2,
        }
    )
    event = span_event(span, {}, SEGMENTS)
    assert event is not None
    assert [m.content for m in event.messages or []] == ["first", "second"]
    assert (event.model, event.response, event.prompt_tokens, event.completion_tokens) == ("smollm2", "answer", 7, 2)
    assert event.route == "default" and event.tenant == "default"


def test_openinference_values_as_text_or_as_an_openai_request_and_response() -> None:
    text = span_event(
        make_span({"openinference.span.kind": "LLM", "input.value": "plain prompt", "output.value": "plain reply"}),
        {},
        SEGMENTS,
    )
    assert text is not None and (text.prompt, text.response, text.model) == ("plain prompt", "plain reply", "unknown")
    request = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "from json"}]}]}
    reply = {"choices": [{"message": {"role": "assistant", "content": "json reply"}}]}
    as_json = span_event(
        make_span(
            {
                "openinference.span.kind": "LLM",
                "input.value": json.dumps(request),
                "input.mime_type": "application/json",
                "output.value": json.dumps(reply),
                "output.mime_type": "application/json",
            }
        ),
        {},
        SEGMENTS,
    )
    assert as_json is not None and as_json.prompt_text == "from json" and as_json.response == "json reply"


def test_older_conventions_carry_content_in_span_events() -> None:
    prompt = json.dumps([{"role": "user", "content": "event prompt"}])
    span = make_span(
        {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4"},
        events=(
            ("gen_ai.content.prompt", {"gen_ai.prompt": prompt}),
            ("gen_ai.content.completion", {"gen_ai.completion": json.dumps([{"content": "event reply"}])}),
        ),
    )
    event = span_event(span, {}, SEGMENTS)
    assert event is not None and (event.prompt_text, event.response) == ("event prompt", "event reply")
    per_message = make_span(
        {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4"},
        events=(("gen_ai.system.message", {"content": "sys"}), ("gen_ai.user.message", {"content": "hello"})),
    )
    event = span_event(per_message, {}, SEGMENTS)
    assert event is not None and [m.role for m in event.messages or []] == ["system", "user"]


def test_a_model_call_without_a_prompt_or_with_invalid_values_is_unusable() -> None:
    with pytest.raises(UnusableSpan) as no_prompt:
        span_event(make_span({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}), {}, SEGMENTS)
    assert no_prompt.value.outcome is SpanOutcome.no_prompt
    negative = {"gen_ai.request.model": "m", "gen_ai.prompt.0.content": "hi", "gen_ai.prompt.0.role": "user"}
    with pytest.raises(UnusableSpan) as invalid:
        span_event(make_span({**negative, "gen_ai.usage.input_tokens": -3}), {}, SEGMENTS)
    assert invalid.value.outcome is SpanOutcome.invalid and "prompt_tokens" in str(invalid.value)


def test_every_span_of_a_request_is_counted_once() -> None:
    chat = {"gen_ai.request.model": "m", "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "hi"}
    spans = [
        make_span(chat),
        make_span({"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "e"}),
        make_span({"openinference.span.kind": "CHAIN"}),
        make_span({"http.route": "/health"}),
        make_span({"gen_ai.operation.name": "chat"}),
    ]
    resource = Resource(attributes=pairs({"service.name": "svc"}))
    mapped = map_spans([ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])], SEGMENTS)
    assert [event.route for event in mapped.events] == ["svc"]
    assert mapped.outcomes == {
        SpanOutcome.accepted: 1,
        SpanOutcome.not_genai: 2,
        SpanOutcome.other_operation: 1,
        SpanOutcome.no_prompt: 1,
        SpanOutcome.invalid: 0,
    }
    assert mapped.rejected == 1 and mapped.reasons == [
        "span eee19b7ec3c1b174: no prompt in the span (is content capture on?)"
    ]


@pytest.mark.parametrize(
    "odd",
    [
        {"gen_ai.input.messages": "[" * 5000 + "]" * 5000},
        {"gen_ai.input.messages": json.dumps([1, "x", {"role": 7, "parts": "text"}])},
        {"gen_ai.input.messages": json.dumps({"role": "user"}), "gen_ai.output.messages": "not json"},
        {"openinference.span.kind": "LLM", "input.mime_type": "application/json", "input.value": "[1, 2]"},
        {
            "openinference.span.kind": "LLM",
            "output.mime_type": "application/json",
            "output.value": json.dumps({"choices": "all"}),
        },
        {"openinference.span.kind": "LLM", "output.mime_type": "application/json", "output.value": '{"choices": [1]}'},
        {"gen_ai.prompt.0.content": ["a", "list"], "gen_ai.prompt.0.role": "user"},
        {"gen_ai.prompt.x.content": "no index", "gen_ai.response.finish_reasons": "stop"},
    ],
)
def test_odd_shapes_make_an_event_or_an_unusable_span_never_an_error(odd: dict[str, object]) -> None:
    try:
        event = span_event(make_span({"gen_ai.request.model": "m", **odd}), {}, SEGMENTS)
    except UnusableSpan as unusable:
        assert unusable.outcome in (SpanOutcome.no_prompt, SpanOutcome.invalid)
    else:
        assert event is not None and event.model_dump_json()
