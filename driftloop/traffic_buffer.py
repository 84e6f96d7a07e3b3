"""A bounded buffer of traffic events on their way to ``llm.traffic``, drained by one aiokafka producer, so a
request that adds events never waits on the broker.

:meth:`TrafficBuffer.offer` takes all of a request's records or none: none when they would not fit
(:attr:`Admission.full`) or while the broker is down (:attr:`Admission.unavailable`: the last send failed to
reach it and its records wait to be retried). The drain loop sends in batches, retries what the broker did not
take with backoff (at least once: a batch half taken is sent again in part), and drops, counting them, records
the broker refuses for good (over its size limit). Events in the buffer are lost if the process dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from enum import StrEnum

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from driftloop.metrics import IngestMetrics

log = logging.getLogger(__name__)

Record = tuple[bytes, bytes]
"""(key, value) of one traffic event."""
BATCH = 500
"""Records sent at once."""
BACKOFF_S = (0.2, 5.0)
"""First and longest wait before a failed send is retried (doubling)."""


class Admission(StrEnum):
    accepted = "accepted"
    full = "full"
    unavailable = "unavailable"


class TrafficBuffer:
    """At most ``capacity`` records waiting (and one batch in flight), sent to ``topic`` by :meth:`running`'s drain
    loop; a send the broker has not answered within ``send_timeout_s`` counts as the broker down."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        capacity: int,
        send_timeout_s: float,
        metrics: IngestMetrics | None = None,
    ) -> None:
        self.bootstrap, self.topic, self.capacity, self.send_timeout_s = bootstrap, topic, capacity, send_timeout_s
        self.metrics = metrics or IngestMetrics.default()
        self.broker_up = True
        self._records: deque[Record] = deque()
        self._in_flight = 0
        self._waiting = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None

    def __len__(self) -> int:
        return len(self._records)

    def admits(self, count: int = 1) -> Admission:
        """Whether ``count`` more records would be taken now (a request is refused before it is decoded)."""
        if not self.broker_up:
            return Admission.unavailable
        return Admission.full if len(self._records) + count > self.capacity else Admission.accepted

    def offer(self, records: list[Record]) -> Admission:
        """Take every one of ``records``, or none and say why."""
        admission = self.admits(len(records))
        if admission is not Admission.accepted:
            return admission
        self._records.extend(records)
        self.metrics.buffered.set(len(self._records))
        self._waiting.set()
        return Admission.accepted

    @contextlib.asynccontextmanager
    async def running(self, flush_s: float = 5.0) -> AsyncIterator[TrafficBuffer]:
        """Drain the buffer while the block runs; after it, send what is left for up to ``flush_s`` seconds."""
        drain = asyncio.create_task(self._drain())
        try:
            yield self
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flushed(), flush_s)
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
            if self._records:
                log.warning("%d traffic events not sent to %s: the broker did not take them", len(self), self.topic)
            if self._producer is not None:
                with contextlib.suppress(KafkaError):
                    await self._producer.stop()

    async def _flushed(self) -> None:
        while self._records or self._in_flight:
            await asyncio.sleep(0.05)

    async def _drain(self) -> None:
        backoff = BACKOFF_S[0]
        while True:
            if not self._records:
                self._waiting.clear()
                await self._waiting.wait()
            batch = [self._records.popleft() for _ in range(min(BATCH, len(self._records)))]
            self._in_flight = len(batch)
            try:
                retry = await self._send(batch)
            except KafkaError as error:  # the producer could not start
                retry = batch
                log.warning("no producer for %s (%s); retrying", self.topic, error)
            self._records.extendleft(reversed(retry))
            self._in_flight = 0
            self.metrics.buffered.set(len(self._records))
            if retry:
                self._set_broker_up(False)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_S[1])
            else:
                self._set_broker_up(True)
                backoff = BACKOFF_S[0]

    async def _send(self, batch: list[Record]) -> list[Record]:
        """Send ``batch`` in order and wait for the broker; the records to send again (the broker did not take
        them); those it refused for good are counted as dropped."""
        producer = await self._started()
        results: list[asyncio.Future | BaseException] = []
        for key, value in batch:
            try:
                results.append(await producer.send(self.topic, value, key=key))
            except KafkaError as error:  # no metadata within the timeout, over the size limit
                results.append(error)
                if _unreachable(error):
                    break
        futures = [result for result in results if isinstance(result, asyncio.Future)]
        outcomes = iter(await asyncio.gather(*futures, return_exceptions=True))
        failed: list[Record] = []
        for record, result in zip(batch, results, strict=False):
            error = result if isinstance(result, BaseException) else next(outcomes)
            if not isinstance(error, BaseException):
                self.metrics.published.labels("published").inc()
            elif isinstance(error, KafkaError) and not error.retriable and not _unreachable(error):
                self.metrics.published.labels("dropped").inc()
                log.warning("the broker refused a traffic event for good: %s", error)
            else:
                failed.append(record)
        return failed + batch[len(results) :]

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks="all",
                linger_ms=5,
                request_timeout_ms=int(self.send_timeout_s * 1000),
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    def _set_broker_up(self, up: bool) -> None:
        if up != self.broker_up:
            log.warning("the broker %s", "takes traffic events again" if up else "does not take traffic events")
        self.broker_up = up
        self.metrics.broker_up.set(int(up))


def _unreachable(error: BaseException) -> bool:
    """Whether an error means the broker did not answer (as opposed to refusing a record)."""
    return isinstance(error, (KafkaConnectionError, KafkaTimeoutError))
