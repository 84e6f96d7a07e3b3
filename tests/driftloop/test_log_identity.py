"""The traffic topic as the worker routes on it: a partition count only ever read from the broker, never guessed
from a description with an error (taken as 0 partitions, every record was forwarded until the next rebalance, and
then the records processed in place overtook their forwarded copies, which were dropped as redeliveries)."""

from __future__ import annotations

import asyncio

import pytest
from kafka.errors import UnknownTopicOrPartitionError

from driftloop.kafka import describe_topic, ensure_topics
from driftloop.log_identity import LOOKUPS, TrafficLog
from driftloop.settings import Settings

pytestmark = pytest.mark.integration


def test_a_missing_topic_is_an_error_not_a_topic_without_partitions(settings: Settings) -> None:
    with pytest.raises(UnknownTopicOrPartitionError):
        describe_topic(settings, settings.traffic_topic)
    ensure_topics(settings)
    described = describe_topic(settings, settings.traffic_topic)
    assert described.partitions == settings.topic_partitions
    assert described.id is not None


def test_the_worker_routes_on_the_count_the_broker_gives(settings: Settings) -> None:
    traffic = TrafficLog(settings.model_copy(update={"topic_partitions": 3}), [])
    assert asyncio.run(traffic.partition_count()) == 3  # the loop's topics created on the way, as a worker's are
    assert traffic.id == describe_topic(settings, settings.traffic_topic).id is not None


def test_the_log_is_looked_up_once_per_assignment_before_its_records(settings: Settings) -> None:
    """The worker's step and its rebalance signal both follow the log: one look-up per partition assignment, and
    another when an assignment begins during one (the id a record is admitted under is its assignment's)."""
    traffic = TrafficLog(settings, [])
    looked_up = []
    refresh = traffic.refresh

    async def counted() -> bool:
        looked_up.append(traffic.assignment)
        return await refresh()

    traffic.refresh = counted  # the real look-up, counted
    assignments = iter([2, 3, 3])  # what the third caller reads: 2, then 3 (begun during its look-up), then 3

    async def run() -> None:
        await asyncio.gather(*(traffic.follow(lambda: 1) for _ in range(3)))  # concurrent callers: one look-up
        await traffic.follow(lambda: 1)
        await traffic.follow(lambda: next(assignments))

    asyncio.run(run())
    assert looked_up == [None, 1, 2]
    assert traffic.assignment == 3
    assert traffic.id == describe_topic(settings, settings.traffic_topic).id is not None


def test_a_look_up_the_broker_did_not_answer_is_tried_again_before_records_are_admitted() -> None:
    traffic = TrafficLog(Settings(), [])
    answers = iter([False, True, False, False, False, False])
    calls = []

    async def refresh() -> bool:
        calls.append(traffic.assignment)
        return next(answers)

    traffic.refresh = refresh  # a broker that errs, then answers; then one that keeps erring

    async def run() -> None:
        await traffic.follow(lambda: 1)
        await traffic.follow(lambda: 2)

    asyncio.run(run())
    assert calls == [None, None, 1, 1, 1], "until it answers, or LOOKUPS tries"
    assert len(calls) - 2 == LOOKUPS and traffic.assignment == 2, "then the assignment goes on with no id"
