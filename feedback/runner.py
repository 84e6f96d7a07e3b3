"""Incident in, published dataset out: job → samples → teacher targets → quality gate → dataset →
finetune.requests → webhooks. Without a teacher (no LLM endpoint) the dataset is an evaluation set: no targets,
not sent to fine-tuning.

A runner takes a job under a lease (``feedback.leases``) that it renews while it works; every write to the
job record is fenced by that lease, so a runner that lost it (it stalled, or another took over after it
died) changes nothing. Each step is idempotent, so at-least-once delivery of an incident, a takeover or
a retry yields one job, one dataset version, one ``finetune.requests`` message (by event id) and one
successful delivery per webhook.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis.asyncio import Redis

from core import keys
from core.embeddings import Model
from core.store import Collection
from feedback.datasets import DatasetManifest, Lineage, earlier_samples, write_dataset
from feedback.jobs import (
    GenerationJob,
    JobState,
    cancel_requested,
    finish,
    jobs,
    stored_incident,
    submit,
)
from feedback.leases import Lease, LeaseLost
from feedback.loop_timing import LoopTiming
from feedback.metrics import FeedbackMetrics
from feedback.publishing import Publisher
from feedback.registry import DatasetFilter, DatasetRegistry
from feedback.storage import DatasetStore
from feedback.targets import TargetWriter
from feedback.webhooks import Dispatcher
from generators.quality import ENCODER, QualityThresholds, Seen, screen
from generators.recipes import RecipeBook, load_recipes, run_recipe
from generators.samples import Generator
from monitor.incidents import DriftIncident

__all__ = ["Claim", "JobRunner", "datasets", "jobs", "worker_id"]

log = logging.getLogger(__name__)

GATED = "quality gate: "
"""How the error of a job that the quality gate turned down begins (the failed checks follow)."""
EARLIER_VERSIONS = 20
"""Newest versions of a segment and incident kind whose samples a job's samples are deduplicated against."""


def datasets(redis: Redis) -> Collection[DatasetManifest]:
    return Collection(redis, keys.DATASET, DatasetManifest)


def worker_id() -> str:
    """A lease owner id unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class Claim:
    """A job this runner holds the lease on, with its input."""

    job: GenerationJob
    lease: Lease
    incident: DriftIncident
    started: float = field(default_factory=time.perf_counter)


@dataclass
class JobRunner:
    redis: Redis
    store: DatasetStore
    publisher: Publisher
    dispatcher: Dispatcher
    samples_per_job: int = 120
    seed: int = 0
    owner: str = field(default_factory=worker_id)
    lease_s: float = 30.0
    max_attempts: int = 3
    require_approval: bool = False
    recipes: RecipeBook = field(default_factory=load_recipes)
    extra_generators: dict[str, Generator] = field(default_factory=dict)
    """Generators only some deployments have (``{"llm": LLMGenerator(...)}``); recipes naming others skip them."""
    targets: TargetWriter | None = None
    """The teacher that writes and checks each sample's target; None: datasets are evaluation sets."""
    gate_encoder: Model = ENCODER
    """The sentence encoder of the quality gate's embedding figures."""
    quality_thresholds: QualityThresholds | None = None
    """None: the defaults on the scale of ``gate_encoder`` (:meth:`QualityThresholds.on`)."""
    metrics: FeedbackMetrics = field(default_factory=FeedbackMetrics.default, repr=False)
    """Where jobs, samples and takeovers are counted: the process's metrics unless given."""

    async def accept(self, incident: DriftIncident) -> list[GenerationJob]:
        """Announce ``incident`` (``incident.opened``, recorded in the webhook outbox: no receiver is waited on)
        and queue the job of each of its causes that has a recipe (none for a cause only on-call can fix:
        latency); each job as it is when it exists already. An incident published again with a cause added queues
        that cause's job (job ids are per incident and recipe)."""
        await self.dispatcher.dispatch("incident.opened", incident.id, incident.model_dump(mode="json"))
        return [await submit(self.redis, incident, recipe.name) for recipe in self.recipes.for_incident(incident)]

    async def handle(self, incident: DriftIncident) -> list[GenerationJob]:
        """Accept ``incident``, then run (or finish) its jobs; a finished job is returned untouched, and so is one
        another runner holds."""
        return [await self.run(job.id) for job in await self.accept(incident)]

    async def run(self, job_id: str) -> GenerationJob:
        """Take the job and run one attempt of it, or return it as it is when it cannot be taken."""
        claim = await self.take(job_id)
        if claim is None:
            return await jobs(self.redis).get(job_id) or GenerationJob(id=job_id, incident_id="?", recipe="?")
        return await self.execute(claim)

    async def take(self, job_id: str) -> Claim | None:
        """Lease the job and mark it running for a new attempt. None when another runner holds it, or when it
        is finished, cancelled or out of attempts (then it is finished here)."""
        lease = Lease(self.redis, job_id, self.owner, self.lease_s)
        if not await lease.acquire():
            return None
        job = await jobs(self.redis).get(job_id)
        incident = await stored_incident(self.redis, job_id)
        if job is None or job.finished:
            await self.redis.srem(keys.JOBS_ACTIVE, job_id)
            await lease.release()
            return None
        if incident is None:
            return await self._end(job, lease, JobState.FAILED, "the incident of this job is not stored")
        if await cancel_requested(self.redis, job_id):
            return await self._end(job, lease, JobState.CANCELLED, "cancelled before it ran")
        if job.attempts >= self.max_attempts:
            last = f"last error: {job.error}" if job.error else "its workers stopped without finishing it"
            return await self._end(job, lease, JobState.FAILED, f"gave up after {job.attempts} attempts; {last}")
        claim = Claim(job, lease, incident)
        if job.state == JobState.RUNNING:
            self.metrics.job_takeovers.inc()
            log.warning("taking over job %s from %s (its lease lapsed)", job_id, job.lease_owner)
        job.state, job.attempts = JobState.RUNNING, job.attempts + 1
        job.started_at = job.updated_at = datetime.now(UTC)
        job.lease_owner, job.lease_expires_at = self.owner, lease.expires_at
        try:
            await self._save(claim)
        except LeaseLost:
            return None
        return claim

    async def execute(self, claim: Claim) -> GenerationJob:
        """Run the attempt that ``claim`` began; a failure leaves the job queued for the sweeper, or failed on
        its last attempt."""
        try:
            async with claim.lease.kept():
                return await self._produce(claim)
        except LeaseLost:
            log.warning("stopped job %s: %s lost its lease", claim.job.id, self.owner)
        except Exception as error:  # whatever broke this attempt, the job is retried or failed
            log.exception("job %s, attempt %d", claim.job.id, claim.job.attempts)
            return await self._attempt_failed(claim, f"{type(error).__name__}: {error}")
        finally:
            await claim.lease.release()
        return await jobs(self.redis).get(claim.job.id) or claim.job

    async def _produce(self, claim: Claim) -> GenerationJob:
        job, incident, timing = claim.job, claim.incident, LoopTiming()
        recipe, seed = self.recipes.named(job.recipe), self.seed if job.seed is None else job.seed
        with timing.stage("generation"):  # CPU-bound stages run in threads: the event loop keeps the leases
            generated = await asyncio.to_thread(
                run_recipe, incident, recipe, job.samples or self.samples_per_job, str(seed), self.extra_generators
            )
        samples, written = generated.samples, None
        with timing.stage("targets"):
            if self.targets is not None:
                written = await asyncio.to_thread(self.targets.write, samples, incident, str(seed))
                samples = written.samples
        with timing.stage("quality_gate"):
            earlier = await self._earlier(incident, job.id)
            evidence = [e.prompt for e in incident.evidence]
            gate = await asyncio.to_thread(
                screen, samples, evidence, earlier, self.quality_thresholds, self.gate_encoder
            )
        quality = gate.report
        quality.targets = written.report if written else None
        rejected = Counter(generated.rejected)
        rejected.update(quality.targets.dropped if quality.targets else {})
        rejected.update(quality.rejected)
        for reason, count in rejected.items():
            self.metrics.samples_rejected.labels(reason).inc(count)
        if not quality.passed:
            self.metrics.quality_gate_failures.inc()
            failures = "; ".join(quality.failures)
            return await self._finish(job, claim.lease, JobState.FAILED, f"{GATED}{failures}", claim.started)
        if await cancel_requested(self.redis, job.id):
            return await self._finish(job, claim.lease, JobState.CANCELLED, "cancelled before its dataset was written")
        lineage = Lineage(
            incident_id=incident.id,
            incident_kind=incident.kind,
            segment=incident.segment,
            job_id=job.id,
            recipe=recipe.name,
            generator_versions=generated.generator_versions,
            seed=str(seed),
            teacher=quality.targets.teacher if quality.targets else None,
        )
        with timing.stage("writing"):
            manifest = await asyncio.to_thread(
                write_dataset, gate.kept, lineage, quality, dict(rejected), self.store, gate.views
            )
            await DatasetRegistry(self.redis).register(manifest)
        job.dataset_id = manifest.id
        if await cancel_requested(self.redis, job.id):
            return await self._finish(job, claim.lease, JobState.CANCELLED, "cancelled before publication")
        with timing.stage("publishing"):
            await self._save(claim)  # still ours: nobody took the job over while it was generated
            if self.require_approval:
                await self.publisher.hold(manifest)
            else:
                await self.publisher.publish(manifest)
        if not self.require_approval:  # a held dataset reaches finetune.requests when someone approves it
            timing.observe(incident, job, self.metrics)
        for sample in gate.kept:
            self.metrics.samples.labels(sample.technique).inc()
        for figure, value in quality.figures().items():
            self.metrics.dataset_quality.labels(figure).set(value)
        return await self._finish(job, claim.lease, JobState.SUCCEEDED, started=claim.started)

    async def _earlier(self, incident: DriftIncident, job_id: str) -> list[Seen]:
        """Samples of the newest versions for the incident's segment and kind, made by other jobs."""
        where = DatasetFilter(segment=incident.segment)
        _, versions = await DatasetRegistry(self.redis).query(where, limit=EARLIER_VERSIONS)
        return await asyncio.to_thread(lambda: list(earlier_samples(versions, incident.segment, incident.kind, job_id)))

    async def _save(self, claim: Claim) -> None:
        claim.job.updated_at = datetime.now(UTC)
        claim.job.lease_expires_at = claim.lease.expires_at if claim.job.lease_owner else None
        await claim.lease.write(keys.record(keys.JOB, claim.job.id), claim.job.model_dump_json())

    async def _attempt_failed(self, claim: Claim, error: str) -> GenerationJob:
        job = claim.job
        reason = f"attempt {job.attempts} of {self.max_attempts}: {error}"
        try:
            if job.attempts >= self.max_attempts:
                return await self._finish(job, claim.lease, JobState.FAILED, reason, claim.started)
            job.state, job.error, job.lease_owner = JobState.QUEUED, reason, None
            await self._save(claim)
        except LeaseLost:
            pass
        return job

    async def _finish(
        self, job: GenerationJob, lease: Lease, state: JobState, error: str | None = None, started: float | None = None
    ) -> GenerationJob:
        """Write ``job``'s final state under ``lease``; a failure is announced as ``job.failed``."""
        job = finish(job, state, error)
        await lease.write(keys.record(keys.JOB, job.id), job.model_dump_json())
        await self.redis.srem(keys.JOBS_ACTIVE, job.id)
        self.metrics.jobs.labels(state).inc()
        if started is not None:
            self.metrics.job_seconds.observe(time.perf_counter() - started)
        log.warning("job %s %s%s", job.id, state, f": {error}" if error else "")
        if state == JobState.FAILED:
            await self.dispatcher.dispatch("job.failed", job.id, job.model_dump(mode="json"))
        return job

    async def _end(self, job: GenerationJob, lease: Lease, state: JobState, error: str) -> None:
        """Finish a job that ``take`` will not run, and let its lease go."""
        try:
            await self._finish(job, lease, state, error)
        finally:
            await lease.release()
