import json
from datetime import UTC, datetime

import pytest

from monitor.events import InvalidEvent, parse_event


def native(**overrides: object) -> bytes:
    event = {"schema": "driftloop.traffic/v1", "id": "e1", "model": "m", "prompt": "hello", **overrides}
    return json.dumps(event).encode()


def test_native_event_keeps_its_fields() -> None:
    event = parse_event(native(route="chat", tenant="acme", latency_ms=120.5, feedback="down"))
    assert (event.segment, event.latency_ms, event.feedback) == ("m/chat/acme", 120.5, "down")


def test_openai_pair_is_mapped() -> None:
    pair = {
        "request": {
            "model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "What is 2+2?"}],
        },
        "response": {
            "id": "chatcmpl-1",
            "created": 1_700_000_000,
            "model": "gpt-4o-mini-2024",
            "choices": [{"message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 1},
        },
        "latency_ms": 310,
    }
    event = parse_event(json.dumps(pair))
    assert event.id == "chatcmpl-1"
    assert event.prompt_text == "What is 2+2?"
    assert (event.model, event.response, event.completion_tokens, event.latency_ms) == ("gpt-4o-mini-2024", "4", 1, 310)


def test_an_event_without_its_own_time_takes_its_record_s() -> None:
    produced = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert parse_event(native(), produced_at=produced).timestamp == produced
    own = native(timestamp="2026-02-01T00:00:00Z")
    assert parse_event(own, produced_at=produced).timestamp == datetime(2026, 2, 1, tzinfo=UTC)
    pair = {"request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "response": {"id": "c1"}}
    assert parse_event(json.dumps(pair), produced_at=produced).timestamp == produced
    created = {**pair, "response": {"id": "c1", "created": 1_700_000_000}}  # the answer's own time
    assert parse_event(json.dumps(created), produced_at=produced).timestamp == datetime(
        2023, 11, 14, 22, 13, 20, tzinfo=UTC
    )
    assert parse_event(native()).timestamp > produced  # none: the time it was read


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"schema": "other/v2", "id": "x"}', "unknown_schema"),
        (native(prompt=None), "invalid_field"),
        (native(latency_ms=-1), "invalid_field"),
        (native(unexpected=1), "invalid_field"),
        (b'{"request": "nope"}', "invalid_openai_pair"),
        (b"\xff\xfe", "not_json"),
    ],
)
def test_invalid_events_say_why(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    assert caught.value.reason == reason
    assert caught.value.detail


def deep(depth: int) -> bytes:
    """An event whose metadata nests ``depth`` JSON arrays."""
    return native(metadata={"x": "X"}).replace(b'"X"', b"[" * depth + b"]" * depth)


def latency(literal: bytes) -> bytes:
    """An event whose latency is the JSON number ``literal``, as written."""
    return native(latency_ms="X").replace(b'"X"', literal)


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        pytest.param(deep(100_000), "too_deep", "nested", id="nested-100000-deep"),
        pytest.param(native(prompt="caf").replace(b"caf", b"caf\xc3"), "not_json", "utf-8", id="invalid-utf8"),
        pytest.param(latency(b"NaN"), "not_finite", "NaN", id="nan"),
        pytest.param(latency(b"Infinity"), "not_finite", "Infinity", id="infinity"),
        pytest.param(latency(b"-Infinity"), "not_finite", "-Infinity", id="minus-infinity"),
        pytest.param(latency(b"1e999"), "not_finite", "1e999", id="float-overflow"),
        pytest.param(native(metadata={"n": "X"}).replace(b'"X"', b"NaN"), "not_finite", "NaN", id="nan-in-metadata"),
        pytest.param(latency(b"9" * 5000), "not_json", "digits", id="integer-of-5000-digits"),
        pytest.param(native(prompt="\ud800 half a pair"), "invalid_unicode", "surrogate", id="lone-surrogate"),
        pytest.param(native(prompt="a\tb").replace(b"\\t", b"\t"), "not_json", "control character", id="raw-tab"),
    ],
)
def test_poison_records_are_refused_with_a_clear_reason(raw: bytes, reason: str, detail: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    assert caught.value.reason == reason
    assert detail in caught.value.detail


def test_a_record_over_the_size_limit_is_too_large() -> None:
    raw = native(prompt="x" * 2000)
    assert parse_event(raw, max_bytes=len(raw)).prompt == "x" * 2000
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw, max_bytes=len(raw) - 1)
    assert caught.value.reason == "too_large"
    assert f"{len(raw)} bytes" in caught.value.detail


def test_escaped_control_characters_are_text() -> None:
    """Control characters escaped in JSON strings are accepted: real prompts carry them (terminal colours, tool
    output, bidirectional marks), and a wave of them is a drift to detect, not a fault."""
    prompt = "a\u0000b \u001b[31mred\u001b[0m \u202eevil \U0001f600"
    assert parse_event(native(prompt=prompt)).prompt == prompt


def test_nesting_within_the_parser_limit_is_accepted() -> None:
    assert parse_event(deep(100)).id == "e1"


@pytest.mark.parametrize(
    "pair",
    [
        {"request": {"messages": []}, "response": ["not", "an", "object"]},
        {"request": {"messages": []}, "response": {"choices": [1]}},
        {"request": {"messages": []}, "response": {"created": "yesterday"}},
        {"request": {"messages": []}, "response": {"created": 1e20}},
        {"request": {"messages": []}, "metadata": "route=chat"},
    ],
    ids=["response-a-list", "choice-a-number", "created-a-word", "created-out-of-range", "metadata-a-string"],
)
def test_an_openai_pair_of_the_wrong_shape_is_invalid(pair: dict) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(json.dumps(pair))
    assert caught.value.reason == "invalid_openai_pair"
