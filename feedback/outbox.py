"""The webhook outbox: deliveries recorded in Redis when an event is dispatched, delivered by loops of their own.

Dispatching an event only records one waiting delivery per receiver (:meth:`Outbox.put`, idempotent by webhook
and message), so jobs, datasets and ``finetune.requests`` never wait on a receiver. Every process with a
:class:`DeliveryLoop` (the worker and the API) claims due deliveries and runs them concurrently: at most
``concurrency`` at once and one per receiver, so a slow receiver delays only its own messages. Each webhook has
its own queue, and a claim takes the head of each queue whose receiver is free, so a long backlog of one
receiver never hides another's. A claim is a lease: the delivery's due time is pushed ``lease_s`` ahead, and
again every third of that while it runs; the delivery of a process that died comes due when its lease lapses
and another process takes it (delivery is at least once; receivers dedup on ``webhook-id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from datetime import UTC, datetime

from pydantic import BaseModel, Field, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from core import keys
from core.tasks import cancel_requested

log = logging.getLogger(__name__)

# KEYS[1]: the set of webhooks with queues; ARGV: now (ms), lease (ms), most to claim, the queues' key prefix,
# then the webhooks whose deliveries this process has in flight. Returns webhook id, message id, … pairs.
# The queues' keys are built here, so the outbox needs a Redis that is not a cluster (driftloop's is not).
_CLAIM = """
local now, lease, most, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local busy = {}
for i = 5, #ARGV do busy[ARGV[i]] = true end
local claimed = {}
for _, hook in ipairs(redis.call('smembers', KEYS[1])) do
  if #claimed >= 2 * most then break end
  if not busy[hook] then
    local queue = prefix .. hook
    local head = redis.call('zrangebyscore', queue, '-inf', now, 'LIMIT', 0, 1)[1]
    if head then
      redis.call('zadd', queue, now + lease, head)
      claimed[#claimed + 1] = hook
      claimed[#claimed + 1] = head
    elseif redis.call('zcard', queue) == 0 then
      redis.call('srem', KEYS[1], hook)
    end
  end
end
return claimed
"""


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class Pending(BaseModel):
    """A message waiting to be delivered to one webhook."""

    webhook_id: str
    message_id: str
    event_type: str
    body: str = Field(description="the JSON body to send: type, timestamp, data")
    queued_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class Outbox:
    """Waiting deliveries in Redis, claimed under leases of ``lease_s``."""

    def __init__(self, redis: Redis, lease_s: float = 30.0) -> None:
        if lease_s <= 0:
            raise ValueError(f"a lease lasts a positive time, not {lease_s}")
        self.redis, self.lease_s = redis, lease_s

    async def put(self, pending: Pending) -> bool:
        """Record ``pending``, due now; False (nothing changed) when that message waits for that webhook already."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.outbox_entry(pending.webhook_id, pending.message_id), pending.model_dump_json(), nx=True)
            pipe.zadd(keys.outbox(pending.webhook_id), {pending.message_id: _ms(time.time())}, nx=True)
            pipe.sadd(keys.OUTBOX_RECEIVERS, pending.webhook_id)
            created, *_ = await pipe.execute()
        return bool(created)

    async def claim(self, most: int, busy: Collection[str] = ()) -> list[Pending]:
        """Lease up to ``most`` due deliveries, at most one per webhook and none for the webhooks in ``busy``."""
        now = _ms(time.time())
        args = (now, _ms(self.lease_s), most, keys.outbox(""), *busy)
        claimed = await self.redis.eval(_CLAIM, 1, keys.OUTBOX_RECEIVERS, *args)
        pairs = [(hook.decode(), message.decode()) for hook, message in zip(claimed[::2], claimed[1::2], strict=True)]
        raws = await self.redis.mget([keys.outbox_entry(*pair) for pair in pairs]) if pairs else []
        pending = []
        for (hook, message), raw in zip(pairs, raws, strict=True):
            try:
                pending.append(Pending.model_validate_json(raw or ""))
            except ValidationError:  # its entry is gone or unreadable: nothing to deliver
                log.error("dropping the delivery of %s to webhook %s: no readable entry", message, hook)
                await self.done(Pending(webhook_id=hook, message_id=message, event_type="?", body=""))
        return pending

    async def renew(self, pending: Pending) -> None:
        """Push the lease on a claimed delivery back (a delivery no longer waiting stays gone)."""
        due = _ms(time.time() + self.lease_s)
        await self.redis.zadd(keys.outbox(pending.webhook_id), {pending.message_id: due}, xx=True)

    async def release(self, pending: Pending) -> None:
        """Hand a claimed delivery back, due now."""
        await self.redis.zadd(keys.outbox(pending.webhook_id), {pending.message_id: _ms(time.time())}, xx=True)

    async def done(self, pending: Pending) -> None:
        """Remove a delivery from the outbox (delivered, dead-lettered or pointless)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.outbox(pending.webhook_id), pending.message_id)
            pipe.delete(keys.outbox_entry(pending.webhook_id, pending.message_id))
            await pipe.execute()

    async def size(self) -> int:
        """Deliveries waiting or in flight, all webhooks together."""
        hooks = [hook.decode() for hook in await self.redis.smembers(keys.OUTBOX_RECEIVERS)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for hook in hooks:
                pipe.zcard(keys.outbox(hook))
            return sum(await pipe.execute())

    @contextlib.asynccontextmanager
    async def kept(self, pending: Pending) -> AsyncIterator[None]:
        """Renew the lease on ``pending`` every third of its length while the block runs."""

        async def renew_forever() -> None:
            while not cancel_requested():
                await asyncio.sleep(self.lease_s / 3)
                try:
                    await self.renew(pending)
                except (RedisError, OSError) as error:
                    log.warning("could not renew the lease on delivery %s: %s", pending.message_id, error)

        renewer = asyncio.create_task(renew_forever())
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer


Deliver = Callable[[Pending], Awaitable[object]]
"""Delivers one claimed delivery, retries included, and removes it from the outbox."""


class DeliveryLoop:
    """Claims due deliveries of ``outbox`` every ``poll_s`` (and whenever one ends) and runs ``deliver`` on them,
    at most ``concurrency`` at once and one per webhook. A delivery that raises is logged and, still in the
    outbox, retaken after its lease."""

    def __init__(self, outbox: Outbox, deliver: Deliver, concurrency: int = 8, poll_s: float = 0.25) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        if poll_s <= 0:
            raise ValueError(f"poll_s must be positive, not {poll_s}")
        self.outbox, self.deliver, self.concurrency, self.poll_s = outbox, deliver, concurrency, poll_s

    async def run(self) -> None:
        """Deliver until cancelled (:func:`~core.tasks.cancel_requested`: redis-py may swallow the cancellation);
        the deliveries in flight then are handed back to the outbox."""
        running: dict[asyncio.Task[None], Pending] = {}
        try:
            while not cancel_requested():
                free = self.concurrency - len(running)
                if free:
                    for pending in await self._claim(free, {p.webhook_id for p in running.values()}):
                        running[asyncio.create_task(self._deliver(pending))] = pending
                if running:
                    ended, _ = await asyncio.wait(running, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED)
                    for task in ended:
                        del running[task]
                else:
                    await asyncio.sleep(self.poll_s)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            for pending in running.values():
                with contextlib.suppress(RedisError, OSError):
                    await self.outbox.release(pending)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the loop as a task of its own while the block runs."""
        task = asyncio.create_task(self.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _claim(self, most: int, busy: set[str]) -> list[Pending]:
        try:
            return await self.outbox.claim(most, busy)
        except (RedisError, OSError) as error:  # the client logs an outage once (core.redis_client)
            log.debug("could not claim webhook deliveries: %s", error)
            return []

    async def _deliver(self, pending: Pending) -> None:
        try:
            async with self.outbox.kept(pending):
                await self.deliver(pending)
        except Exception:  # one delivery's failure never stops the others; it is retaken after its lease
            log.exception("delivery of %s to webhook %s", pending.message_id, pending.webhook_id)
