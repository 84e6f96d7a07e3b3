"""The traffic topic as the worker routes on it: a partition count only ever read from the broker, never guessed
from a description with an error (taken as 0 partitions, every record was forwarded until the next rebalance, and
then the records processed in place overtook their forwarded copies, which were dropped as redeliveries)."""

from __future__ import annotations

import asyncio

import pytest
from kafka.errors import UnknownTopicOrPartitionError

from driftloop.kafka import describe_topic, ensure_topics
from driftloop.log_identity import TrafficLog
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
