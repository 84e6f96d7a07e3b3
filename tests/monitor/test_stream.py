"""The stream step without Kafka or Redis: checkpoints in dicts, events built in memory."""

from __future__ import annotations

import asyncio
import copy
import pickle
from collections.abc import Callable

import numpy as np
import pytest

from monitor.agent import measure
from monitor.events import TrafficEvent
from monitor.features import semantic_features
from monitor.incidents import DriftIncident, IncidentKind
from monitor.stream import StreamStep, topic_columns
from monitor.topics import TopicModel
from tests.factories import stream_settings

SEGMENT = "m/default/default"


def events(n: int, model: str = "m", start: int = 0) -> list[TrafficEvent]:
    return [TrafficEvent(id=f"{model}-{i}", model=model, prompt=f"prompt {i}") for i in range(start, start + n)]


def rows(n: int, seed: int = 0) -> list[dict[str, float]]:
    return [{"refusal": float(x)} for x in np.random.default_rng(seed).random(n) < 0.1]


def admitted(step: StreamStep, batch: list[TrafficEvent], partition: int, first_offset: int) -> list[TrafficEvent]:
    return [e for offset, e in enumerate(batch, first_offset) if step.admit(e, partition, offset)]


def test_redelivered_positions_are_dropped_per_partition() -> None:
    step = StreamStep(stream_settings(), {}, {})
    assert len(admitted(step, events(10), partition=0, first_offset=0)) == 10
    assert admitted(step, events(10), partition=0, first_offset=0) == []
    assert len(admitted(step, events(10), partition=0, first_offset=5)) == 5  # offsets 10..14 are new
    assert len(admitted(step, events(3), partition=1, first_offset=0)) == 3  # another partition: its own positions
    assert step.segment(SEGMENT).positions == {0: 14, 1: 2}


def test_a_checkpoint_writes_each_segment_changed_since_the_last_once() -> None:
    store: dict[bytes, bytes] = {}
    step = StreamStep(stream_settings(), store, {})
    step.observe(events(30), rows(30))
    step.observe(events(5, model="other"), rows(5))
    step.observe(events(30, start=30), rows(30))
    assert step.checkpoint() == ["m/default/default", "other/default/default"]
    assert pickle.loads(store[SEGMENT.encode()]).events == 60
    assert step.checkpoint() == []
    assert admitted(step, events(3, model="other"), partition=0, first_offset=0)  # a position taken is a change
    assert step.checkpoint() == ["other/default/default"]
    assert pickle.loads(store[b"other/default/default"]).positions == {0: 2}


def test_an_incident_is_reached_with_its_windows() -> None:
    """A segment that appears after another settled opens a new-segment incident when its reference is in."""
    step = StreamStep(stream_settings(), {}, {})
    step.pin_reference("settled/default/default", rows(200))
    batch = events(150, model="late") + events(5, model="m")
    assert step.observe(batch, rows(155)).reached == []
    outcomes = step.observe(events(60, model="late", start=150), rows(60, seed=1))
    [incident] = outcomes.reached
    assert isinstance(incident, DriftIncident) and incident.kind is IncidentKind.NEW_SEGMENT
    assert outcomes.segments == ["late/default/default"]
    assert set(outcomes.windows) == {incident.id}


def test_a_restored_state_continues_where_it_left_off() -> None:
    monitor_store: dict[bytes, bytes] = {}
    topic_store: dict[bytes, bytes] = {}
    step = StreamStep(stream_settings(), monitor_store, topic_store)
    first = admitted(step, events(120), partition=0, first_offset=0)
    step.observe(first, rows(120))
    step.topics(SEGMENT).assign(np.eye(8)[0])
    step.checkpoint()
    assert set(monitor_store) == set(topic_store) == {SEGMENT.encode()}

    restarted = StreamStep(stream_settings(), monitor_store, topic_store)
    again = admitted(restarted, events(40, start=100), partition=0, first_offset=100)  # 100..119 were in the state
    assert [e.id for e in again] == [f"m-{i}" for i in range(120, 140)]
    restarted.observe(again, rows(20))
    assert restarted.segment(SEGMENT).events == 140
    assert len(restarted.topics(SEGMENT).reference) == 1
    assert restarted.status(SEGMENT).events == 140


def test_checkpoint_writes_topics_only_when_the_segment_has_a_model() -> None:
    monitor_store: dict[bytes, bytes] = {}
    topic_store: dict[bytes, bytes] = {}
    step = StreamStep(stream_settings(), monitor_store, topic_store)
    step.observe(events(3), rows(3))
    step.checkpoint()
    assert set(monitor_store) == {SEGMENT.encode()} and topic_store == {}


def test_topic_columns_equal_the_per_event_assignment() -> None:
    """What the benchmark computes in one batch is what the worker's per-event assignment gives."""
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((6, 16))
    vectors = centers[rng.integers(0, 6, 600)] + 0.5 * rng.standard_normal((600, 16))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    model = TopicModel(reference_size=100, topics=4, seed=0)
    worker = copy.deepcopy(model)
    columns = topic_columns(model, vectors)
    novel = 0
    for i, vector in enumerate(vectors):
        features = semantic_features(worker.assign(vector), 0.0, 0.0)
        del features["injection_similarity"], features["injection_learned"]
        assert {name: columns[name][i] for name in features} == features
        assert all(np.isnan(columns[name][i]) for name in columns.keys() - features.keys())
        novel += features.get("topic_novelty", 0.0)
    assert 0 < novel < 500


def test_measure_adds_embeddings_and_topics_for_the_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("monitor.stream.injection_similarity", lambda vectors, model: np.full(len(vectors), 0.25))
    monkeypatch.setattr("monitor.stream.injection_learned", lambda vectors, texts, model: np.full(len(texts), 0.5))
    rng = np.random.default_rng(0)

    def embed(texts: list[str]) -> np.ndarray:
        x = rng.standard_normal((len(texts), 8))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    step = StreamStep(stream_settings(embeddings=True, embedding_sample_rate=0.5), {}, {})
    batch = events(200)
    inputs = asyncio.run(measure(step, batch, embed))
    chosen = step.sample(batch)
    assert 50 < len(chosen) < 150
    assert all("language" in row and "prompt_chars" in row for row in inputs)
    assert all(("prompt_embedding" in row) == (i in chosen) for i, row in enumerate(inputs))
    assert all(inputs[i]["injection_similarity"] == 0.25 and inputs[i]["injection_learned"] == 0.5 for i in chosen)
    assert "topic_novelty" in inputs[chosen[-1]] and "topic_novelty" not in inputs[chosen[0]]  # fitted on the way
    off = StreamStep(stream_settings(), {}, {})
    assert off.sample(batch) == [] and not any("prompt_embedding" in row for row in asyncio.run(measure(off, batch)))


@pytest.mark.parametrize("legacy", [False, True], ids=["recorded", "from before the encoder was recorded"])
def test_a_segment_measured_by_another_encoder_collects_a_new_reference(
    monkeypatch: pytest.MonkeyPatch, legacy: bool
) -> None:
    """Changing ``embedding_model`` with checkpoints in place: the segments' references hold the other encoder's
    vectors (another dimension) and similarities (another scale), so they are rebased, not fed the new ones."""
    monkeypatch.setattr("monitor.stream.injection_similarity", lambda vectors, model: np.full(len(vectors), 0.25))
    monkeypatch.setattr("monitor.stream.injection_learned", lambda vectors, texts, model: np.full(len(texts), 0.5))
    rng = np.random.default_rng(0)

    def encoder(dimensions: int) -> Callable[[list[str]], np.ndarray]:
        def embed(texts: list[str]) -> np.ndarray:
            x = rng.standard_normal((len(texts), dimensions))
            return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

        return embed

    monitors: dict[bytes, bytes] = {}
    topics: dict[bytes, bytes] = {}
    before = StreamStep(stream_settings(embeddings=True, embedding_model="minilm"), monitors, topics)
    batch = events(300)
    before.observe(batch, asyncio.run(measure(before, batch, encoder(12))))
    assert before.segment(SEGMENT).detectors and before.topics(SEGMENT).fitted
    if legacy:
        before.segment(SEGMENT).encoder = None
    before.checkpoint()

    same = StreamStep(stream_settings(embeddings=True, embedding_model="minilm"), monitors, topics)
    more = events(20, start=300)
    same.observe(more, asyncio.run(measure(same, more, encoder(12))))
    assert same.segment(SEGMENT).detectors, "the same encoder: the reference stands"

    after = StreamStep(stream_settings(embeddings=True, embedding_model="static"), monitors, topics)
    after.observe(more, asyncio.run(measure(after, more, encoder(8))))
    state = after.segment(SEGMENT)
    assert state.state == "reference" and state.encoder == "static" and not after.topics(SEGMENT).fitted
    assert after.checkpoint() == [SEGMENT] and pickle.loads(monitors[SEGMENT.encode()]).encoder == "static"
    rest = events(400, start=320)
    after.observe(rest, asyncio.run(measure(after, rest, encoder(8))))
    assert after.segment(SEGMENT).detectors and after.topics(SEGMENT).centroids.shape[1] == 8
