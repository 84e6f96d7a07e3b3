"""Traffic repartitioned by segment inside the stream, so a segment's detectors live on one worker however
producers key their events.

The worker consumes the traffic topic and its own segments topic (``Settings.segments_topic``), both with the
partitions of the detector checkpoints: Faust assigns co-subscribed topics with as many partitions together, so
partition *p* of each, and of the checkpoints' changelogs, belong to one worker. A traffic record already in its
segment's partition (:func:`segment_partition`: murmur2 of the segment key, as Kafka's producers partition by key)
is processed where it is; any other (a null, random or differently built key) is forwarded to its segment's
partition of the segments topic, with its traffic position in a header (:func:`source_header`), and processed from
there (:func:`forwarded`). Positions, redeliveries and resets stay those of the traffic topic: a record forwarded
twice (its batch redelivered after a crash, before the traffic offsets were committed) is recognised by its
traffic offset and counted once.

>>> segment_partition("gpt-4o-mini/chat/t0", 4), segment_partition("gpt-4o-mini/chat/t1", 4)
(2, 0)
>>> record = forwarded(b"{}", [(HEADER, source_header(Record(b"{}", 3, 1207, 1300, "f3a9")))])
>>> record.partition, record.offset, record.highwater, record.log
(3, 1207, 1300, 'f3a9')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache

from aiokafka.partitioner import murmur2

from monitor.agent import Record

HEADER = "driftloop-source"
"""Header of a forwarded record: its partition, offset, the partition's high-water mark and the log's id
(``-``: unknown) in the traffic topic."""


@lru_cache(maxsize=65_536)
def segment_partition(segment: str, partitions: int) -> int:
    """The partition of ``partitions`` that a segment's events go to: the one Kafka's default partitioner (Java,
    kafka-python, aiokafka; the checkpoints' changelog writes) picks for the segment key."""
    return (murmur2(segment.encode()) & 0x7FFFFFFF) % partitions


def local_rule(traffic_partitions: int, partitions: int) -> Callable[[str, int], bool]:
    """Whether an event of a segment, read from a partition of the traffic topic, is in its segment's partition:
    never when the traffic topic has another number of partitions than the segments topic (then its partitions
    are not assigned with the segments topic's, and every event is forwarded)."""
    if traffic_partitions != partitions:
        return lambda segment, partition: False
    return lambda segment, partition: segment_partition(segment, partitions) == partition


def source_header(record: Record) -> bytes:
    """The record's position in the traffic topic and its log, for :data:`HEADER`."""
    highwater = -1 if record.highwater is None else record.highwater
    return f"{record.partition} {record.offset} {highwater} {record.log or '-'}".encode()


def forwarded(
    value: bytes | None, headers: Iterable[tuple[str, bytes]] | None, produced: float | None = None
) -> Record:
    """A record of the segments topic as the traffic record it was: its value at its traffic position, produced when
    it says (the worker sends it with its traffic record's timestamp). A ``ValueError`` when it has no readable
    :data:`HEADER` (it was not forwarded by a worker)."""
    source = dict(headers or ()).get(HEADER)
    if source is None:
        raise ValueError(f"no {HEADER} header")
    partition, offset, highwater, log = source.decode().split()
    return Record(
        value,
        int(partition),
        int(offset),
        None if int(highwater) < 0 else int(highwater),
        None if log == "-" else log,
        produced,
    )
