"""Faust's Kafka consumer, whose commits never pass an event that was not processed.

Faust commits, per partition, the run of acknowledged offsets that follows the committed one. After a rebalance
it seeks every assigned partition back to its committed offset and reads it again; but messages fetched before
the rebalance are still acknowledged afterwards (the stream acknowledges those it skips as of an older
generation at once, the take buffer its batch when it is done), and those offsets joined the new generation's
run. Then a commit could pass events read again in the new generation but not yet processed: a worker killed
right after such a commit lost them (1 event in 3,000 in some runs of the kill-after-commit test).

:class:`Consumer` counts an acknowledgement only for a message fetched in the current generation, and forgets
what was acknowledged before it seeks to the committed offsets.

It also hands on no record fetched before a seek once the seek is done. Faust's recovery resumes the fetcher, then
resumes the stream partitions and seeks them to their committed offsets while the fetcher runs: records fetched
before the seek, handed on after it, lay past the offset it had set as read, and Faust took the offsets between
for a gap in the log (a compacted one), acknowledged; the events there, cleared from the stream's queue when the
flow resumed, were never processed and the commit passed them (3 to 290 events lost in some runs of the
two-workers fault scenario). :class:`Consumer` drops such records and seeks again, the fetcher then idle.

And a partition with no committed offset (or 0) is sought to its beginning. aiokafka seeks only to a committed
offset past 0, so the fetcher went on from where it was: past records fetched and dropped as stale, never
processed. A group on a broker back without its data has no commits, and its first rebalance lost 769 to 994
events in 3 of 11 runs of the broker-restart fault scenario.

Its fetches wait at most :attr:`App.fetch_max_wait_ms` at the broker, not Faust's fixed 1.5 s. A fetch names only
the partitions with no records left in the client's buffer: one sent while the traffic's records still waited there
named only partitions with nothing to read (the assignor's leader topic, the changelogs, the segments topic), and
the broker held it the whole wait, the traffic's next fetch queued behind it. A Faust app that only read 40,000
events took 1.5 s stalls every few fetches: 3,000 events/s, against 10,000 with a 0.1 s wait.

Last, Faust's livelock detector skips a partition aiokafka has no position for yet (assigned, its offset not yet
reset): it read the position unguarded, aiokafka asserted, and the detector's crash stopped the worker (a live
worker of the two-workers fault test, in the rebalance after the other was killed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from faust.transport.consumer import RecordMap
from faust.transport.drivers import aiokafka
from faust.types import TP, Message, TransportT

if TYPE_CHECKING:
    from monitor.measure_ahead import MeasureAhead

log = logging.getLogger(__name__)


class Consumer(aiokafka.Consumer):
    """The aiokafka consumer of Faust with acknowledgements scoped to the consumer group's generation, and fetches
    scoped to the seeks to the committed offsets (``seeks``, how many were done; ``fetched_after``, how many had
    been when the records being handed on were fetched)."""

    seeks = 0
    fetched_after = 0

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def ack(self, message: Message) -> bool:
        """Acknowledge ``message`` if it was fetched in this generation; one fetched before the last rebalance is
        read again from the committed offset, and only that copy counts."""
        if message.generation_id != self.app.consumer_generation_id:
            return False
        return super().ack(message)

    async def perform_seek(self) -> None:
        """Seek every partition to its committed offset, what was acknowledged before forgotten."""
        for bookkeeping in (self._acked, self._acked_index, self._gap):
            bookkeeping.clear()
        await super().perform_seek()
        self.seeks += 1

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every partition to its committed offset, a stream partition with none (or 0) to its beginning (the
        group's ``earliest``); the committed offsets."""
        committed = await super().seek_to_committed()
        changelogs = self.app.tables.changelog_topics  # read from where the tables' recovery puts them
        unread = [tp for tp, offset in committed.items() if (not offset or offset < 0) and tp.topic not in changelogs]
        if unread:
            await self._thread.seek_to_beginning(*unread)
        return committed

    async def _wait_next_records(self, timeout: float) -> tuple[RecordMap | None, set[TP] | None]:
        if not self.flow_active:  # Faust's waits for the flow, then fetches: the seeks counted as it fetches
            await self.wait(self.can_resume_flow)
        self.fetched_after = self.seeks
        return await super()._wait_next_records(timeout)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's, but records fetched before a seek to the committed offsets are not handed on after it (nor is
        the drain's read offset of the record handed on as it ended kept): the fetcher is sought again instead,
        no fetch in flight, and reads them again. The traffic records handed on are measured ahead
        (:attr:`App.measure_ahead`)."""
        ahead, traffic = self.app.measure_ahead, self.app.traffic_topics
        async for tp, message in super().getmany(timeout):
            if self.seeks == self.fetched_after:
                if ahead is not None and tp.topic in traffic:
                    ahead.fetched(message.value)
                yield tp, message
            if self.seeks != self.fetched_after:
                await self._seek_again()
                return

    def verify_event_path(self, now: float, tp: TP) -> None:
        """Faust's check that ``tp``'s events flow and are committed (it only logs), once aiokafka has a position
        for it."""
        if self._has_position(tp):
            super().verify_event_path(now, tp)

    def _has_position(self, tp: TP) -> bool:
        subscription = self._thread._ensure_consumer()._fetcher._subscriptions.subscription
        if subscription is None or subscription.assignment is None:
            return False
        state = subscription.assignment.state_value(TopicPartition(tp.topic, tp.partition))
        return state is not None and state.has_valid_position

    async def _seek_again(self) -> None:
        try:
            await self.perform_seek()
        except (AssertionError, KafkaError) as error:  # aiokafka's: nothing assigned, or another assignment already
            log.warning("the seek to the committed offsets after a stale fetch failed: %r", error)


class ConsumerThread(aiokafka.AIOKafkaConsumerThread):
    """Faust's thread of the aiokafka consumer, whose fetches wait at most the app's ``fetch_max_wait_ms``."""

    def _create_consumer(self, loop: asyncio.AbstractEventLoop) -> AIOKafkaConsumer:
        consumer = super()._create_consumer(loop)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # Faust passes 1,500; the fetcher reads it at start
        return consumer


class Transport(aiokafka.Transport):
    """Faust's aiokafka transport with :class:`Consumer`."""

    Consumer = Consumer


class App(faust.App):
    """A :class:`faust.App` whose consumer is :class:`Consumer`, which hands the records of ``traffic_topics`` it
    fetches to ``measure_ahead`` (:mod:`monitor.measure_ahead`) when the worker sets one; ``assignments`` counts the
    partition assignments begun (the group's generation does not tell them apart: tansu reports 0 for every join,
    and a group new on a broker back without its data numbers from 1 again); its fetches wait at most
    ``fetch_max_wait_s`` at the broker (``DRIFTLOOP_FETCH_MAX_WAIT_S``)."""

    measure_ahead: MeasureAhead | None = None
    traffic_topics: frozenset[str] = frozenset()
    assignments = 0

    def __init__(self, id: str, *, fetch_max_wait_s: float, **options: Any) -> None:
        super().__init__(id, **options)
        self.fetch_max_wait_ms = round(fetch_max_wait_s * 1000)

    async def _on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self.assignments += 1  # before any record of the assignment is handed on (the flow resumes later)
        await super()._on_partitions_assigned(assigned, generation_id)

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self)
