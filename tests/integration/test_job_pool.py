"""Jobs run concurrently in a worker's pool, never more than its bound at once, each under its lease; the way of
each incident to its published dataset is observed stage by stage."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from core import keys
from driftloop.kafka import ensure_topics
from driftloop.settings import Settings
from feedback.jobs import JobState, submit
from feedback.metrics import STAGES, FeedbackMetrics
from feedback.pool import JobPool
from feedback.publishing import KafkaSend
from tests.factories import traffic_incident
from tests.integration.helpers import run, runner, topic_messages

pytestmark = pytest.mark.integration

JOBS, BOUND = 5, 2


def test_jobs_run_concurrently_up_to_the_bound_and_each_stage_is_observed(settings: Settings) -> None:
    ensure_topics(settings)
    registry = CollectorRegistry()

    async def scenario(redis: Redis, send: KafkaSend) -> tuple[list, int]:
        pool = JobPool(runner(redis, send, settings.data_dir, "worker-a", FeedbackMetrics(registry)), BOUND)
        segments = [f"gpt-4o-mini/chat/t{n}" for n in range(JOBS)]
        queued = [
            await submit(redis, traffic_incident(id=f"inc-{n}", segment=segment), "attack-hardening", samples=20)
            for n, segment in enumerate(segments)
        ]
        tasks = [pool.start(job.id) for job in queued]
        assert pool.start(queued[0].id) is tasks[0], "a job already in the pool is not started twice"
        most = 0
        while not all(task.done() for task in tasks):  # leases held at once, sampled while the jobs run
            leases = await redis.exists(*(keys.job_lease(job.id) for job in queued))
            most = max(most, leases)
            await asyncio.sleep(0.01)
        return await asyncio.gather(*tasks), most

    ended, most = run(settings, scenario)
    assert most == BOUND, f"{most} jobs held leases at once, the bound is {BOUND}"
    assert [job.state for job in ended] == [JobState.SUCCEEDED] * JOBS
    assert len({job.dataset_id for job in ended}) == JOBS
    # no LLM endpoint here: evaluation sets, never sent to fine-tuning (the way still ends at their publishing)
    assert topic_messages(settings, settings.finetune_topic, idle_ms=1000) == []

    def observed(name: str, labels: dict[str, str] | None = None) -> float | None:
        return registry.get_sample_value(name, labels or {})

    for stage in STAGES:
        assert observed("driftloop_loop_stage_seconds_count", {"stage": stage}) == JOBS, stage
    assert observed("driftloop_incident_to_finetune_seconds_count") == JOBS
    stages = sum(observed("driftloop_loop_stage_seconds_sum", {"stage": stage}) for stage in STAGES)
    whole = observed("driftloop_incident_to_finetune_seconds_sum")
    assert stages <= whole, f"the stages ({stages:.2f} s) are parts of the whole way ({whole:.2f} s)"
    queued = observed("driftloop_loop_stage_seconds_sum", {"stage": "queued"})
    generation = observed("driftloop_loop_stage_seconds_sum", {"stage": "generation"})
    assert queued > 0 and generation > 0


def test_a_closed_pool_lets_its_jobs_leases_go(settings: Settings) -> None:
    ensure_topics(settings)

    async def scenario(redis: Redis, send: KafkaSend) -> tuple:
        pool = JobPool(runner(redis, send, settings.data_dir, "worker-a"), 1)
        job = await submit(redis, traffic_incident(), "attack-hardening", samples=20)
        pool.start(job.id)
        while not await redis.exists(keys.job_lease(job.id)):
            await asyncio.sleep(0.01)
        await pool.close()  # the worker stops mid-job
        return await redis.exists(keys.job_lease(job.id)), job.id in pool, await redis.smembers(keys.JOBS_ACTIVE)

    lease, still_in_pool, active = run(settings, scenario)
    assert lease == 0 and not still_in_pool, "the stopped job is left to another worker's sweeper at once"
    assert len(active) == 1, "and it is still active, to be swept"


def test_a_pool_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        JobPool(None, 0)  # type: ignore[arg-type]
