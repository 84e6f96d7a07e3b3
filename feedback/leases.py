"""Job leases in Redis: one owner at a time, an expiry renewed while the owner works, and writes fenced by
ownership, so a worker that lost its lease (it stalled or died) can no longer change the job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core import keys

log = logging.getLogger(__name__)

_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_WRITE = "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[2], ARGV[2]) return 1 end return 0"


class LeaseLost(RuntimeError):
    """The lease on ``job_id`` expired or went to another owner; ``owner`` must stop working on it."""

    def __init__(self, job_id: str, owner: str) -> None:
        self.job_id, self.owner = job_id, owner
        super().__init__(f"{owner} no longer holds the lease on job {job_id}")


async def holder(redis: Redis, job_id: str) -> str | None:
    """The owner of the live lease on ``job_id``, or None when nobody holds one."""
    owner = await redis.get(keys.job_lease(job_id))
    return owner.decode() if owner else None


class Lease:
    """``owner``'s lease on one job, for ``seconds`` at a time."""

    def __init__(self, redis: Redis, job_id: str, owner: str, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"a lease lasts a positive time, not {seconds}")
        self.redis, self.job_id, self.owner, self.seconds = redis, job_id, owner, seconds
        self.key = keys.job_lease(job_id)
        self.expires_at = datetime.now(UTC)

    @property
    def _ms(self) -> int:
        return max(1, int(self.seconds * 1000))

    def _extended(self) -> None:
        self.expires_at = datetime.now(UTC) + timedelta(seconds=self.seconds)

    async def acquire(self) -> bool:
        """Take the lease; False when another owner (or this one, elsewhere) holds it."""
        taken = bool(await self.redis.set(self.key, self.owner, nx=True, px=self._ms))
        if taken:
            self._extended()
        return taken

    async def renew(self) -> bool:
        """Push the expiry back; False when the lease is no longer ours."""
        renewed = bool(await self.redis.eval(_RENEW, 1, self.key, self.owner, self._ms))
        if renewed:
            self._extended()
        return renewed

    async def release(self) -> None:
        """Give the lease up, if it is still ours."""
        await self.redis.eval(_RELEASE, 1, self.key, self.owner)

    async def write(self, key: str, value: str) -> None:
        """``SET key value`` only while the lease is ours (atomically); raises ``LeaseLost`` otherwise."""
        if not await self.redis.eval(_WRITE, 2, self.key, key, self.owner, value):
            raise LeaseLost(self.job_id, self.owner)

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        """Renew the lease every third of its length while the block runs (never cut off mid-command)."""
        stop = asyncio.Event()

        async def renew_until_stopped() -> None:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.seconds / 3)
                    return
                try:
                    renewed = await self.renew()
                except (RedisError, OSError) as error:
                    log.warning("could not renew the lease on job %s: %s", self.job_id, error)
                    continue
                if not renewed:
                    log.warning("lost the lease on job %s (%s)", self.job_id, self.owner)
                    return

        renewer = asyncio.create_task(renew_until_stopped())
        try:
            yield
        finally:
            stop.set()
            await renewer
