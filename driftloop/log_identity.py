"""Which log the traffic topic is: its id and partition count, looked up again at every rebalance.

A broker that lost its data (the embedded tansu keeps everything in memory) comes back without the loop's
topics, its consumer group or its offsets: the worker rejoins, and on the new assignment :class:`TrafficLog`
creates the topics that are missing (the tables' changelogs too: the next checkpoint write would fail) and takes
the traffic topic's new id. Each record carries that id, so a segment whose positions were taken in another log
resets them (:meth:`monitor.stream.StreamStep.admit`) instead of dropping the new log's events as redeliveries,
however many it holds already.

The id is looked up once for each partition assignment, before the first record of it is admitted
(:meth:`TrafficLog.follow`, keyed by :attr:`driftloop.consumer.App.assignments`; not by the group's generation,
which tansu reports as 0 for every join, and which a group new on a broker back without its data numbers from 1
again). The rebalance's own look-up (the
``on_partitions_assigned`` signal) runs after the tables' recovery has been signalled, and that recovery resumes
the stream while the look-up still creates the missing topics (3 s here): records of the new log were admitted
under the old log's id and dropped as redeliveries (256 and 768 events lost in 2 of 8 runs of the broker-restart
fault scenario).

The partition count decides which records a worker processes where they are and which it forwards to their
segment's partition (:func:`driftloop.repartition.local_rule`). It comes from the broker, not from the consumer's
metadata snapshot: aiokafka fills that only on the group's leader, so every other worker forwarded all its records
until it became the leader, and then processed the next ones where they were, before the copies it had forwarded
came back: those, older than the positions taken meanwhile, were dropped as redeliveries (lost). For the same reason
no record is routed on a count not known: a broker error, or a description of the topic with an error (and no
partitions), leaves the last count read, and the worker waits for a first one (:meth:`TrafficLog.partition_count`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from kafka.errors import KafkaError

from driftloop.kafka import describe_topic, ensure_topics
from driftloop.settings import Settings

log = logging.getLogger(__name__)
LOOKUPS = 3
"""Tries of a look-up that :meth:`TrafficLog.follow` makes while the broker gives an error (a topic just recreated
may have no leader yet): with no id, a new log longer than the old one reads as a redelivery."""


class TrafficLog:
    """The traffic topic's id (``id``; None until known, or when the broker gives none) and partition count
    (``partitions``; None until known), refreshed by :meth:`refresh`, which also recreates the ``changelogs`` topics
    if they are missing, and by :meth:`follow` once per partition assignment (``assignment``: the last one it was
    refreshed in)."""

    def __init__(self, settings: Settings, changelogs: Iterable[str]) -> None:
        self.settings = settings
        self.changelogs = list(changelogs)
        self.id: str | None = None
        self.partitions: int | None = None
        self.assignment: int | None = None
        self._following = asyncio.Lock()

    async def follow(self, assignment: Callable[[], int]) -> None:
        """:meth:`refresh` unless done since the current ``assignment()`` began (again if another began during it),
        one caller at a time, tried :data:`LOOKUPS` times a second apart while the broker does not answer: the id
        a record is admitted under is the one of its assignment's log."""
        async with self._following:
            while self.assignment != (current := assignment()):
                tries = 1
                while not await self.refresh() and tries < LOOKUPS:
                    tries += 1
                    await asyncio.sleep(1)
                self.assignment = current

    async def refresh(self) -> bool:
        """Create the loop's topics if they are missing (logged: the broker lost them) and take the traffic topic's
        id and partition count; on a broker error the id is unknown (records then fall back to the high-water check)
        and the partition count stays the last one read. Whether the broker answered."""
        try:
            created = await asyncio.to_thread(ensure_topics, self.settings, self.changelogs)
            if created:
                log.warning("topics %s were missing (a broker that lost its data?): created", ", ".join(created))
            found, partitions = await asyncio.to_thread(describe_topic, self.settings, self.settings.traffic_topic)
        except KafkaError as error:
            log.warning("the traffic topic could not be described (%r): stream resets are found by offsets", error)
            found, answered = None, False
        else:
            answered = True
            if self.partitions not in (None, partitions):
                log.warning("the traffic topic has %d partitions, was %d", partitions, self.partitions)
            self.partitions = partitions
        if None not in (found, self.id) and found != self.id:
            log.warning("topic %s is a new log (id %s, was %s)", self.settings.traffic_topic, found, self.id)
        self.id = found
        return answered

    async def partition_count(self) -> int:
        """The traffic topic's partition count, looked up again every second until the broker gives one: a record
        routed on a guess could overtake the copies forwarded before it, once the count is known."""
        while self.partitions is None:
            async with self._following:
                await self.refresh()
            if self.partitions is None:
                await asyncio.sleep(1)
        return self.partitions
