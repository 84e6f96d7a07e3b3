"""Which log the traffic topic is: its id, looked up again at every rebalance.

A broker that lost its data (the embedded tansu keeps everything in memory) comes back without the loop's
topics, its consumer group or its offsets: the worker rejoins, and on the new assignment :class:`TrafficLog`
creates the topics that are missing (the tables' changelogs too: the next checkpoint write would fail) and takes
the traffic topic's new id. Each record carries that id, so a segment whose positions were taken in another log
resets them (:meth:`monitor.stream.StreamStep.admit`) instead of dropping the new log's events as redeliveries,
however many it holds already.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from kafka.errors import KafkaError

from driftloop.kafka import ensure_topics, topic_id
from driftloop.settings import Settings

log = logging.getLogger(__name__)


class TrafficLog:
    """The traffic topic's id (``id``; None until known, or when the broker gives none), refreshed by
    :meth:`refresh`, which also recreates the ``changelogs`` topics if they are missing."""

    def __init__(self, settings: Settings, changelogs: Iterable[str]) -> None:
        self.settings = settings
        self.changelogs = list(changelogs)
        self.id: str | None = None

    async def refresh(self) -> None:
        """Create the loop's topics if they are missing (logged: the broker lost them) and take the traffic topic's
        id; on a broker error the id is unknown (records then fall back to the high-water check)."""
        try:
            created = await asyncio.to_thread(ensure_topics, self.settings, self.changelogs)
            if created:
                log.warning("topics %s were missing (a broker that lost its data?): created", ", ".join(created))
            found = await asyncio.to_thread(topic_id, self.settings, self.settings.traffic_topic)
        except KafkaError as error:
            log.warning("the traffic topic's id could not be read (%r): stream resets are found by offsets", error)
            found = None
        if None not in (found, self.id) and found != self.id:
            log.warning("topic %s is a new log (id %s, was %s)", self.settings.traffic_topic, found, self.id)
        self.id = found
