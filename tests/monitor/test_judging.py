"""The sampled judge off the stream: offering never waits for a verdict, a verdict joins a later event of its segment,
every outcome is counted, and through the agent (a real Redis) the judged scores get a calibrated detector whose drop
opens a quality-drop incident. The LLM judge itself runs against a real model in tests/integration/test_llm.py."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from redis.asyncio import Redis

from devtools.traffic import sharegpt_pairs
from driftloop.settings import Settings
from driftloop.worker import response_judge
from monitor.agent import Record, TrafficAgent
from monitor.events import TrafficEvent, sampled
from monitor.incidents import DriftIncident
from monitor.judging import JudgeSampler, OverBudget, UnreadableVerdict, judged
from monitor.metrics import JUDGE_OUTCOMES, MonitorMetrics
from monitor.sink import IncidentSink
from monitor.stream import StreamStep
from tests.factories import stream_settings


class Scripted:
    """A judge whose verdict is the ``q<N>`` the response ends with, or what its ``verdicts`` say: an exception to
    raise, ``"hang"`` to wait until released. Counts its calls."""

    def __init__(self, verdicts: dict[str, object] | None = None, exhausted: bool = False) -> None:
        self.verdicts, self.exhausted, self.calls = verdicts or {}, exhausted, 0
        self.release = asyncio.Event()

    async def score(self, prompt: str, response: str) -> float:
        self.calls += 1
        verdict = self.verdicts.get(prompt)
        if verdict == "hang":
            await self.release.wait()
        if isinstance(verdict, Exception):
            raise verdict
        await asyncio.sleep(0)
        return float(response.rsplit("q", 1)[1])

    async def close(self) -> None:
        self.release.set()


def event(i: int, score: int = 4, tenant: str = "acme", response: str | None = "", prompt: str = "") -> TrafficEvent:
    """Event ``e<i>`` of gpt-4o-mini, whose response ends with the judge's verdict ``q<score>`` unless given."""
    reply = f"Here is the answer to question {i}. q{score}" if response == "" else response
    return TrafficEvent(
        id=f"e{i}", model="gpt-4o-mini", tenant=tenant, prompt=prompt or f"question {i}", response=reply
    )


def sampler(judge: Scripted, rate: float = 1.0, max_pending: int = 64) -> JudgeSampler:
    return JudgeSampler(judge, rate, max_pending, MonitorMetrics(CollectorRegistry()))


def verdicts(judging: JudgeSampler) -> dict[str, float]:
    """The outcomes counted, those above zero."""
    counted = {
        outcome: judging.metrics.registry.get_sample_value("driftloop_judge_verdicts_total", {"outcome": outcome})
        for outcome in JUDGE_OUTCOMES
    }
    return {outcome: count for outcome, count in counted.items() if count}


def test_the_judge_sample_is_by_event_id_and_not_the_embedding_sample() -> None:
    ids = [f"evt-{i}" for i in range(20_000)]
    chosen = {i for i in ids if judged(i, 0.2)}
    assert chosen == {i for i in ids if judged(i, 0.2)}, "a hash of the id: the same events every time"
    assert 0.18 < len(chosen) / len(ids) < 0.22
    embedded = {i for i in ids if sampled(i, 0.2)}
    assert 0.03 < len(chosen & embedded) / len(ids) < 0.05, "independent of the embedding sample (0.2 × 0.2)"


def test_offering_never_waits_for_a_verdict_and_bounds_what_it_awaits() -> None:
    async def scenario() -> tuple[int, int, dict[str, float]]:
        judge = Scripted({f"question {i}": "hang" for i in range(10)})
        judging = sampler(judge, max_pending=3)
        judging.offer([event(i) for i in range(10)])  # returns although no verdict will come until released
        pending = len(judging.pending)
        await asyncio.sleep(0.01)  # the calls start, and wait
        await judging.close()
        return pending, judge.calls, verdicts(judging)

    pending, calls, counted = asyncio.run(scenario())
    assert pending == 3 and calls == 3
    assert counted == {"busy": 7}, "the close cancels the awaited ones: no verdict counted for them"


def test_a_verdict_joins_the_next_events_of_its_segment_oldest_first() -> None:
    async def scenario() -> list[dict]:
        judging = sampler(Scripted())
        judging.offer([event(1, score=5), event(2, score=2), event(3, score=3, tenant="globex")])
        await asyncio.gather(*judging.pending)
        later = [event(10, tenant="globex"), event(11), event(12), event(13)]
        inputs: list[dict] = [{} for _ in later]
        judging.attach(later, inputs)
        return inputs

    assert asyncio.run(scenario()) == [{"judge_score": 3.0}, {"judge_score": 5.0}, {"judge_score": 2.0}, {}]


def test_every_outcome_is_counted_and_none_reaches_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> tuple[JudgeSampler, Scripted, JudgeSampler, Scripted]:
        judge = Scripted(
            {
                "question 1": UnreadableVerdict('{"score": "great"}'),
                "question 2": ConnectionError("endpoint down"),
                "question 3": ConnectionError("endpoint down"),
                "question 4": OverBudget("spent"),
            }
        )
        judging = sampler(judge)
        judging.offer([event(i) for i in range(6)] + [event(7, response=None)])  # no response: nothing to judge
        await asyncio.gather(*judging.pending)
        spent = Scripted(exhausted=True)
        over = sampler(spent)
        over.offer([event(i) for i in range(5)])
        return judging, judge, over, spent

    with caplog.at_level(logging.WARNING, logger="monitor.judging"):
        judging, judge, over, spent = asyncio.run(scenario())
    assert judge.calls == 6
    assert verdicts(judging) == {"scored": 2, "unreadable": 1, "failed": 2, "over_budget": 1}
    assert [r.message for r in caplog.records].count(
        "the judge failed (logged again once it has recovered and fails again): endpoint down"
    ) == 1
    assert verdicts(over) == {"over_budget": 5} and spent.calls == 0, "a spent budget makes no call"


def test_judged_scores_get_a_detector_and_their_drop_is_a_quality_drop_through_the_agent(services: Settings) -> None:
    """A 200-event reference, every response judged: the scores, one batch late, collect a reference of their own,
    calibrate a CUSUM, and a drop of the judged quality (the text as before) opens a quality-drop incident."""
    rng = np.random.default_rng(3)
    good, bad = [0.05, 0.1, 0.2, 0.35, 0.3], [0.3, 0.3, 0.2, 0.15, 0.05]
    drop_at = 700
    scores = [int(rng.choice(np.arange(1, 6), p=good if i < drop_at else bad)) for i in range(1400)]
    pairs = sharegpt_pairs()
    chosen = rng.choice(len(pairs), len(scores))  # real traffic, the same mix throughout
    judged_events = [event(i, response=f"{pairs[j][1]} q{scores[i]}", prompt=pairs[j][0]) for i, j in enumerate(chosen)]
    records = [Record(e.model_dump_json(by_alias=True).encode(), 0, i) for i, e in enumerate(judged_events)]
    step = StreamStep(stream_settings(), {}, {}, MonitorMetrics(CollectorRegistry()))
    opened: list[DriftIncident] = []

    async def emit(incident: DriftIncident) -> None:
        opened.append(incident)

    async def scenario() -> tuple[int, str | None]:
        redis = Redis.from_url(services.redis_url)
        await redis.flushdb()
        judging = sampler(Scripted())
        agent = TrafficAgent(step, redis, _ignore, IncidentSink(redis, emit), _ignore, step.metrics, judge=judging)
        calibrated_at = None
        try:
            for start in range(0, len(records), 50):
                await agent.process(records[start : start + 50])
                await asyncio.gather(*judging.pending)
                segment = step.segment("gpt-4o-mini/default/acme")
                if calibrated_at is None and "judge_score" in segment.detectors:
                    calibrated_at = segment.events
                if opened:
                    break
            return calibrated_at or 0, step.segment("gpt-4o-mini/default/acme").detectors["cost_usd"].kind
        finally:
            await judging.close()
            await redis.aclose()

    calibrated_at, cost_detector = asyncio.run(scenario())
    assert cost_detector == "cusum", "a priced model's events have a cost, watched from the segment's reference"
    assert 200 < calibrated_at < drop_at, "the judged scores' own reference completes after the segment's"
    [incident] = opened
    assert incident.kind == "quality-drop" and "judge_score" in [f.feature for f in incident.features]
    assert drop_at < incident.detected_after_events < drop_at + 300


async def _ignore(*_: object) -> None:
    """No dead letters or webhooks here."""


def test_the_judge_is_off_by_default_and_needs_an_endpoint() -> None:
    metrics = MonitorMetrics(CollectorRegistry())
    assert response_judge(Settings(_env_file=None), metrics) is None
    with pytest.raises(ValidationError, match="DRIFTLOOP_JUDGE_SAMPLE_RATE > 0\\) needs DRIFTLOOP_LLM_BASE_URL"):
        Settings(_env_file=None, judge_sample_rate=0.05)
    on = Settings(_env_file=None, judge_sample_rate=0.05, llm_base_url="http://vllm:8000/v1", llm_concurrency=4)
    judging = response_judge(on, metrics)
    assert judging is not None and (judging.rate, judging.max_pending) == (0.05, 4)
