"""``driftloop replay`` against a real broker: every send is checked, and what the broker did not take is counted,
reported and turned into a non-zero exit."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devtools.embedded import kafka_broker, settings_env
from devtools.traffic import shifted_stream
from driftloop.cli import app
from driftloop.kafka import ensure_topics, replay
from driftloop.settings import Settings, get_settings
from tests.integration.helpers import topic_messages

pytestmark = pytest.mark.integration


def lines(count: int) -> list[str]:
    return [json.dumps(event) for event in shifted_stream(count, None, seed=41)]


@pytest.fixture
def cli_settings(settings: Settings) -> Iterator[Settings]:
    """``settings`` as the CLI reads them (``get_settings`` cleared before and after)."""
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def test_a_record_the_broker_refuses_is_counted_and_the_command_fails(cli_settings: Settings, tmp_path: Path) -> None:
    traffic = lines(10)
    oversized = json.dumps({**json.loads(traffic[0]), "prompt": "word " * 250_000})  # over the producer's 1 MiB
    path = tmp_path / "traffic.jsonl"
    path.write_text("\n".join([*traffic[:5], oversized, *traffic[5:]]) + "\n", encoding="utf-8")

    result = CliRunner().invoke(app, ["replay", str(path)], env=settings_env(cli_settings))

    assert result.exit_code == 1, result.output
    assert f"published 10 of 11 events to {cli_settings.traffic_topic}" in result.output
    assert "failed: 1 of 11 events (MessageSizeTooLargeError ×1)" in result.output
    assert [message["id"] for message in topic_messages(cli_settings, cli_settings.traffic_topic)] == [
        json.loads(line)["id"] for line in traffic
    ]


def test_a_clean_replay_exits_zero(cli_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    path.write_bytes(b"\n".join([line.encode() for line in lines(5)] + [b"not \xff json"]))

    result = CliRunner().invoke(app, ["replay", str(path)], env=settings_env(cli_settings))

    assert result.exit_code == 0, result.output
    assert "published 6 of 6 events" in result.output and "failed" not in result.output


def test_sends_to_a_broker_that_stopped_fail_after_the_delivery_timeout(settings: Settings, tmp_path: Path) -> None:
    """The broker stops after the first send: the producer retries each send until the delivery timeout, then
    every event not acknowledged counts as failed."""
    with contextlib.ExitStack() as broker:
        own = settings.model_copy(update={"kafka_bootstrap": broker.enter_context(kafka_broker(tmp_path))})
        ensure_topics(own)
        sends = 0

        def stop_after_the_first(count: int) -> None:
            nonlocal sends
            sends += count
            if sends == 1:
                broker.close()

        result = replay(lines(20), own, progress=stop_after_the_first, delivery_timeout_s=3)

    assert result.sent + result.failed == 20
    assert result.failed >= 19 and sum(result.errors.values()) == result.failed


def test_a_broker_that_cannot_be_reached_fails_every_event(settings: Settings, tmp_path: Path) -> None:
    with kafka_broker(tmp_path) as bootstrap:
        stopped = settings.model_copy(update={"kafka_bootstrap": bootstrap})
    result = replay(lines(7), stopped, delivery_timeout_s=2)
    assert (result.sent, result.failed) == (0, 7)
    assert sum(result.errors.values()) == 7
