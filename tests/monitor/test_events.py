import json

import pytest

from monitor import InvalidEvent, parse_event


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
