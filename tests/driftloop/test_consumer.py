"""The worker's consumer commits only offsets whose events were processed, across a rebalance."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

import faust
import pytest
from aiokafka.consumer.fetcher import OffsetResetStrategy
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.structs import ConsumerRecord, TopicPartition
from faust.types import TP, Message

from driftloop.consumer import App

TOPIC = "llm.traffic"
PARTITION = TP(TOPIC, 0)


def message(offset: int, generation: int) -> Message:
    return Message(TOPIC, 0, offset, 0.0, 0, {}, b"k", b"v", None, tp=PARTITION, generation_id=generation)


def subscribe(app: faust.App) -> None:
    """The app consumes the traffic topic, acknowledging its messages (as the worker's agent does)."""
    app.topics.add(app.topic(TOPIC))
    asyncio.run(app.topics._update_indices())


def commit_after_a_rebalance(app: faust.App) -> int | None:
    """Generation 1 fetched offsets 100-105 and committed none; a rebalance (generation 2) gives the partition back,
    and it is read again from 100. Offsets 101-105 of generation 1, fetched before the rebalance, are acknowledged
    after it (skipped by the stream, or at the end of the batch they were taken in); then generation 2 processes
    offset 100. The offset a commit would take now."""
    subscribe(app)
    consumer = app.consumer
    consumer._committed_offset[PARTITION] = 100
    app.consumer_generation_id = 2
    for offset in range(101, 106):
        consumer.ack(message(offset, generation=1))
    consumer.ack(message(100, generation=2))
    return consumer._filter_committable_offsets({PARTITION}).get(PARTITION)


def forgotten_at_the_seek(app: faust.App) -> list[int]:
    """Offsets acknowledged between the revocation and the seek to the committed offsets (the generation not yet
    changed) that still count after the seek."""
    subscribe(app)
    consumer = app.consumer
    app.consumer_generation_id = 1
    for offset in range(101, 106):
        consumer.ack(message(offset, generation=1))

    async def committed() -> dict:
        return {PARTITION: 100}

    consumer.seek_to_committed = committed
    asyncio.run(consumer.perform_seek())
    return list(consumer._acked[PARTITION])


def fetched_across_a_seek(app: faust.App) -> tuple[list[int], int]:
    """The fetcher got offsets 100-109 (the committed offset is 100); the stream had taken 100-102 when Faust's
    recovery sought the partition to its committed offset, the fetcher running (it resumes the flow first). The
    offsets handed on after that seek, and how many seeks were done in all."""
    subscribe(app)
    consumer = app.consumer
    seeks = []

    async def committed() -> dict:
        seeks.append(PARTITION)
        return {PARTITION: 100}

    async def fetch(active_partitions: set, timeout: float) -> dict:
        return {
            PARTITION: [
                ConsumerRecord(TOPIC, 0, offset, 0, 0, b"k", b"v", None, 1, 1, ()) for offset in range(100, 110)
            ]
        }

    consumer.seek_to_committed, consumer._getmany, consumer.highwater = committed, fetch, lambda tp: 110
    consumer._active_partitions = {PARTITION}
    consumer.resume_flow()

    async def drain() -> list[int]:
        handed = []
        async for _, message in consumer.getmany(timeout=0):
            handed.append(message.offset)
            if message.offset == 102:
                await consumer.perform_seek()  # what the recovery does meanwhile
        return handed[3:]

    return asyncio.run(drain()), len(seeks)


def sought_to_the_beginning(app: faust.App, committed: dict) -> list:
    """The partitions a seek to the ``committed`` offsets sends back to their beginning."""
    subscribe(app)
    consumer = app.consumer
    beginnings: list = []

    class Thread:
        async def seek_to_committed(self) -> dict:
            return committed

        async def seek_to_beginning(self, *partitions: TP) -> None:
            beginnings.extend(partitions)

    consumer._thread = Thread()
    asyncio.run(consumer.perform_seek())
    return beginnings


@pytest.fixture
def app() -> App:
    return App(
        "consumer-test", fetch_max_wait_s=0.1, broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False
    )


def test_events_of_an_older_generation_do_not_move_the_commit(app: App) -> None:
    assert commit_after_a_rebalance(app) == 101  # only offset 100 is processed in generation 2


def test_fausts_own_consumer_commits_past_events_not_yet_processed() -> None:
    """The race this module guards against: without it, the commit passes offsets 101-105, which generation 2
    read again but had not processed; a worker killed then lost them."""
    stock = faust.App("consumer-test", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
    assert commit_after_a_rebalance(stock) == 106


def test_a_seek_to_the_committed_offsets_forgets_earlier_acknowledgements(app: App) -> None:
    assert forgotten_at_the_seek(app) == []


def test_records_fetched_before_a_seek_are_not_handed_on_after_it(app: App) -> None:
    """They would lie past the read offset the seek set; the fetcher is sought again and reads them again."""
    assert fetched_across_a_seek(app) == ([], 2)


def test_fausts_own_consumer_hands_on_records_fetched_before_a_seek() -> None:
    """The race this module guards against: Faust's drain took 103 after the read offset 100 for a gap of 101-102
    in the log, acknowledged, though they were cleared from the stream's queue unprocessed; and 100-109, read again,
    fell below the read offset (109) and were dropped."""
    stock = faust.App("consumer-test", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
    assert fetched_across_a_seek(stock) == (list(range(103, 110)), 1)


def test_a_partition_with_nothing_committed_is_read_from_its_beginning(app: App) -> None:
    """aiokafka seeks only to a committed offset past 0: without this, the fetcher went on past the records it had
    fetched before the rebalance, dropped as stale (a broker back without its data: the new group commits nothing)."""
    other = TP(TOPIC, 1)
    third = TP(TOPIC, 2)
    table = app.Table("state")  # its changelog is left where the recovery put it
    changelog = TP(table.changelog_topic.get_topic_name(), 0)
    committed = {PARTITION: None, other: 0, third: 100, changelog: None}
    assert sought_to_the_beginning(app, committed) == [PARTITION, other]


def test_fausts_own_consumer_leaves_a_partition_with_nothing_committed_where_it_was() -> None:
    stock = faust.App("consumer-test", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
    assert sought_to_the_beginning(stock, {PARTITION: None, TP(TOPIC, 1): 0}) == []


def livelock_check_of_a_partition_awaiting_its_reset(app: faust.App, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Faust's livelock detector checks a partition that aiokafka was told to read from its beginning, its offset
    not yet reset (no position: it asserts one), its last fetch a moment ago; then the same once the partition has
    a position. The errors the check logged."""
    subscribe(app)
    partition = TopicPartition(TOPIC, 0)

    async def check() -> None:
        subscriptions = SubscriptionState()
        subscriptions.assign_from_user({partition})
        state = subscriptions.subscription.assignment.state_value(partition)
        state.await_reset(OffsetResetStrategy.EARLIEST)
        state.timestamp = time.monotonic() * 1000
        thread = app.consumer._thread
        thread._consumer = SimpleNamespace(_fetcher=SimpleNamespace(_subscriptions=subscriptions))
        thread.time_started = time.monotonic() - 3600  # long enough for the check to log what it misses
        app.consumer.verify_event_path(time.monotonic(), PARTITION)
        state.reset_to(100)
        app.consumer.verify_event_path(time.monotonic(), PARTITION)

    with caplog.at_level(logging.ERROR):
        asyncio.run(check())
    return [record.getMessage() for record in caplog.records]


def test_the_livelock_check_waits_for_a_partitions_position(app: App, caplog: pytest.LogCaptureFixture) -> None:
    """The check of a partition without a position is skipped (it crashed the worker in a rebalance); once it has
    one, Faust's check runs (no highwater fetched yet since the start: it says so)."""
    [logged] = livelock_check_of_a_partition_awaiting_its_reset(app, caplog)
    assert "Highwater not yet available" in logged


def test_fausts_own_livelock_check_asserts_a_partitions_position(caplog: pytest.LogCaptureFixture) -> None:
    stock = faust.App("consumer-test", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
    with pytest.raises(AssertionError):
        livelock_check_of_a_partition_awaiting_its_reset(stock, caplog)


def fetch_max_wait_ms(app: faust.App) -> int:
    """How long the aiokafka consumer that ``app``'s consumer thread creates lets a fetch wait at the broker (its
    fetcher takes the value when the consumer starts)."""

    async def created() -> int:
        return app.consumer._thread._create_consumer(asyncio.get_running_loop())._fetch_max_wait_ms

    return asyncio.run(created())


def test_a_fetch_waits_at_the_broker_as_long_as_the_setting_says() -> None:
    """A fetch of only empty partitions (sent while the traffic's records wait in the client's buffer) is held at
    the broker that long, the traffic's next fetch behind it."""
    app = App("consumer-test", fetch_max_wait_s=0.25, broker="kafka://127.0.0.1:1", store="memory://")
    assert fetch_max_wait_ms(app) == 250


def test_fausts_own_consumer_lets_a_fetch_wait_a_second_and_a_half() -> None:
    stock = faust.App("consumer-test", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
    assert fetch_max_wait_ms(stock) == 1500
