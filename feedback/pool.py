"""A worker's job slots: each generation job runs as a task of its own, at most ``concurrency`` at once.

The jobs agent queues an incident's job in Redis (:meth:`~feedback.runner.JobRunner.accept`) and starts it here
without waiting, so the next incident is read at once; its task waits for a free slot, then runs one attempt
under the job's lease (:meth:`~feedback.runner.JobRunner.run`). A job waiting for a slot holds no lease, so
another worker's sweeper with a slot free takes it meanwhile (``feedback.sweeper``); the lease decides who runs
it, and the loser finds it leased or finished and lets it be. The CPU-heavy stages run in threads
(``asyncio.to_thread``), so the event loop keeps renewing leases and heartbeating while jobs generate.
"""

from __future__ import annotations

import asyncio
import logging

from feedback.jobs import GenerationJob
from feedback.runner import JobRunner

log = logging.getLogger(__name__)


class JobPool:
    """Runs ``runner``'s jobs, at most ``concurrency`` at once in this process."""

    def __init__(self, runner: JobRunner, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.runner, self.concurrency = runner, concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task[GenerationJob | None]] = {}

    def __contains__(self, job_id: str) -> bool:
        """Whether the job waits for a slot or runs here."""
        return job_id in self._tasks

    def start(self, job_id: str) -> asyncio.Task[GenerationJob | None]:
        """A task that runs one attempt of ``job_id`` once a slot is free, and returns the job as it ended (None when
        the attempt broke down before it could say, logged); the job's task already here, if there is one."""
        if (task := self._tasks.get(job_id)) is None:
            task = self._tasks[job_id] = asyncio.create_task(self._run(job_id), name=f"job {job_id}")
            task.add_done_callback(lambda _: self._tasks.pop(job_id, None))
        return task

    async def _run(self, job_id: str) -> GenerationJob | None:
        async with self._slots:
            try:
                return await self.runner.run(job_id)
            except Exception:  # Redis gone as the attempt began or ended: the job is left for a sweeper
                log.exception("job %s", job_id)
                return None

    async def close(self) -> None:
        """Stop every job here: their leases are let go, so another worker's sweeper takes them over."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
