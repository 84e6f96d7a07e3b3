"""Personal data at rest: incident evidence read back with a read token, dead letters on the real broker and the
detectors' checkpoints hold none of the values the issue found surviving the old patterns."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from driftloop.kafka import ensure_topics
from driftloop.settings import Settings
from feedback.publishing import KafkaSend
from monitor.agent import Record, TrafficAgent
from monitor.events import TrafficEvent
from monitor.sink import IncidentSink
from monitor.stream import StreamStep
from tests.integration.helpers import run, topic_messages

pytestmark = pytest.mark.integration

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PERSONAL = {
    # kind: (a prompt as users write them, the value in it that must not be stored)
    "person name": ("Please write a reference letter for Maria Gonzalez, my former intern.", "Gonzalez"),
    "AWS access key": ("Why does boto3 reject aws_access_key_id = AKIAIOSFODNN7EXAMPLE?", "AKIAIOSFODNN7EXAMPLE"),
    "AWS secret key": (
        "my config has aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, is that safe?",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    "SSN": ("The form rejected 536-22-8726 as invalid, what format does it want?", "536-22-8726"),
    "IBAN": ("Translate: please wire the deposit to DE89 3704 0044 0532 0130 00 by Monday.", "0532 0130"),
    "JWT": (f"Decode this token for me: {JWT}", "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
    "password= value": ("psql keeps failing with DATABASE_URL password=Tr0ub4dor&3 host=db", "Tr0ub4dor&3"),
    "international phone": ("Format nicely: Ruf mich unter +49 30 901820 an oder +33 1 42 68 53 00.", "42 68 53"),
    "IPv6": ("nginx cannot bind to [2001:db8:85a3::8a2e:370:7334]:443, why?", "8a2e:370:7334"),
}


def test_evidence_of_a_manual_job_holds_no_personal_data(
    settings: Settings, make_client: Callable[..., TestClient]
) -> None:
    """``POST /v1/jobs`` with prompts carrying each kind, then ``GET /v1/incidents`` with a read token."""
    ensure_topics(settings)
    body = {"recipe": "edge-cases", "segment": "m/support/acme", "prompts": [p for p, _ in PERSONAL.values()]}
    with make_client() as operator:
        created = operator.post("/v1/jobs", json=body)
    assert created.status_code == 202, created.text
    with make_client("read") as reader:
        listed = reader.get("/v1/incidents")
    assert listed.status_code == 200
    [incident] = [i for i in listed.json() if i["id"] == created.json()["incident_id"]]
    stored = json.dumps(incident)
    survived = [kind for kind, (_, value) in PERSONAL.items() if value in stored]
    assert survived == [], f"stored unredacted: {survived}"
    assert len(incident["evidence"]) == len(PERSONAL)


def _invalid_record() -> bytes:
    """A record the parser rejects (the prompt is not text) that carries personal data in every field."""
    note = " ".join(prompt for prompt, _ in PERSONAL.values())
    return json.dumps({"schema": "driftloop.traffic/v1", "id": "e1", "model": "m", "prompt": 42, "note": note}).encode()


@pytest.mark.parametrize("keep_raw", [False, True])
def test_a_dead_letter_holds_a_redacted_copy_unless_raw_is_kept(settings: Settings, keep_raw: bool) -> None:
    ensure_topics(settings)

    async def scenario(redis: Redis, _: KafkaSend) -> None:
        dead_letters = KafkaSend(settings.kafka_bootstrap, settings.dlq_topic)
        step = StreamStep(settings, {}, {})
        agent = TrafficAgent(
            step, redis, lambda key, value: dead_letters(key.decode(), value), IncidentSink(redis), _ignore,
            keep_raw_dead_letters=keep_raw,
        )  # fmt: skip
        try:
            await agent.process([Record(_invalid_record(), 0, 0)])
        finally:
            await dead_letters.close()

    run(settings, scenario)
    [letter] = topic_messages(settings, settings.dlq_topic)
    assert letter["reason"] == "invalid_field" and letter["redacted"] is not keep_raw
    survived = [kind for kind, (_, value) in PERSONAL.items() if value in letter["event"]]
    assert survived == (list(PERSONAL) if keep_raw else [])


async def _ignore(*_: object) -> None:
    """No webhook receivers here."""


def test_the_dead_letter_setting_reads_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().dlq_keep_raw is False
    monkeypatch.setenv("DRIFTLOOP_DLQ_KEEP_RAW", "true")
    assert Settings().dlq_keep_raw is True


def test_a_checkpoint_holds_no_personal_data() -> None:
    """The pickled segment state, as the worker writes it to the changelog, while the reference is collected, once
    it is calibrated, and once an incident opened on the events with personal data."""
    checkpoints: dict[bytes, bytes] = {}
    options = {"detector_service_ert": 1e6, "detector_warmup": 0, "reference_events": 200, "resolve_events": 50}
    step = StreamStep(
        SimpleNamespace(**options, topic_reference_size=40, topic_count=4, job_seed=0, embeddings=False,
                        embedding_sample_rate=1.0),
        checkpoints, {},
    )  # fmt: skip
    prompts = [prompt for prompt, _ in PERSONAL.values()]

    def feed(start: int, count: int, refusing: bool) -> list:
        batch = [
            TrafficEvent(
                id=f"e{i}", model="m", prompt=prompts[i % len(prompts)], response="I can't help" if refusing else "ok"
            )
            for i in range(start, start + count)
        ]
        return step.observe(batch, step.features(batch)).reached

    def at_rest() -> str:
        step.checkpoint()
        pickled = checkpoints[b"m/default/default"]
        assert pickle.loads(pickled).events == step.segment("m/default/default").events
        return pickled.decode("latin-1")

    feed(0, 120, refusing=False)  # collecting the reference
    assert [kind for kind, (_, value) in PERSONAL.items() if value in at_rest()] == []
    feed(120, 200, refusing=False)  # calibrated: the report rows keep the reference's prompts
    assert step.segment("m/default/default").collection.report_rows
    assert [kind for kind, (_, value) in PERSONAL.items() if value in at_rest()] == []
    [incident] = feed(320, 200, refusing=True)
    assert incident.evidence and not [kind for kind, (_, value) in PERSONAL.items() if value in str(incident)]
    assert [kind for kind, (_, value) in PERSONAL.items() if value in at_rest()] == []
