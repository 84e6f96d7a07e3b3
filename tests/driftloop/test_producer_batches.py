"""The embedded broker's end offsets, which a table's recovery reads up to, are exact only for one-record batches."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from driftloop.settings import Settings

pytestmark = pytest.mark.integration


def _end_after_twelve(settings: Settings, topic: str, batch_bytes: int) -> int:
    """The end offset the broker reports after 12 records sent at once by a producer batching ``batch_bytes``."""

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, max_batch_size=batch_bytes)
        await producer.start()
        try:
            sent = [await producer.send(topic, b"checkpoint", key=b"segment", partition=0) for _ in range(12)]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    asyncio.run(produce())
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        return consumer.end_offsets([TopicPartition(topic, 0)])[TopicPartition(topic, 0)]
    finally:
        consumer.close()


def test_the_embedded_broker_batches_one_record_so_its_end_offsets_are_exact(settings: Settings) -> None:
    """tansu reports a partition's end as its last batch's first offset + 1: a worker taking over a partition read
    its table's changelog only that far and missed the newest checkpoints (a segment seen as new). The embedded
    services' settings send one record a batch, and the end is exact."""
    assert settings.producer_batch_bytes == 1
    assert _end_after_twelve(settings, f"{settings.app_id}-one", settings.producer_batch_bytes) == 12
    assert _end_after_twelve(settings, f"{settings.app_id}-many", 16384) < 12  # the broker's fault, kept in view
