"""Incident in, published dataset out: job → samples → quality gate → dataset → finetune.requests → webhooks.

Every step is idempotent, so at-least-once delivery of an incident yields one job, one dataset
version, one ``finetune.requests`` message (by event id) and one successful delivery per webhook.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from feedback import metrics
from feedback.datasets import DatasetManifest, Lineage, write_dataset
from feedback.finetune import finetune_request
from feedback.jobs import GenerationJob, JobState, job_id
from feedback.webhooks import Dispatcher
from generators.quality import assess
from generators.recipes import RECIPES, run_recipe
from monitor.incidents import DriftIncident
from monitor.store import PREFIX, Collection

Publish = Callable[[str, bytes], Awaitable[None]]
"""Sends (key, value) to the ``finetune.requests`` topic."""


def jobs(redis: Redis) -> Collection[GenerationJob]:
    return Collection(redis, "job", GenerationJob)


def datasets(redis: Redis) -> Collection[DatasetManifest]:
    return Collection(redis, "dataset", DatasetManifest)


@dataclass
class JobRunner:
    redis: Redis
    data_dir: Path
    publish: Publish
    dispatcher: Dispatcher
    samples_per_job: int = 120
    seed: int = 0

    async def handle(self, incident: DriftIncident) -> GenerationJob:
        """Run (or finish) the job for ``incident``; a finished job is returned untouched."""
        recipe = RECIPES[incident.kind]
        job = GenerationJob(id=job_id(incident.id, recipe.name), incident_id=incident.id, recipe=recipe.name)
        if not await jobs(self.redis).create(job):
            job = await jobs(self.redis).get(job.id) or job
            if job.state in (JobState.SUCCEEDED, JobState.FAILED):
                return job
        job.state, job.attempts = JobState.RUNNING, job.attempts + 1
        await jobs(self.redis).save(job)
        started = time.perf_counter()
        generated = run_recipe(incident, recipe, self.samples_per_job, seed=str(self.seed))
        quality = assess(generated.samples, [e.prompt for e in incident.evidence])
        for reason, count in generated.rejected.items():
            metrics.SAMPLES_REJECTED.labels(reason).inc(count)
        if not quality.passed:
            metrics.QUALITY_GATE_FAILURES.inc()
            return await self._finish(job, started, error="quality gate: " + "; ".join(quality.failures))
        lineage = Lineage(
            incident_id=incident.id,
            incident_kind=incident.kind,
            segment=incident.segment,
            job_id=job.id,
            recipe=recipe.name,
            generator_versions=generated.generator_versions,
            seed=str(self.seed),
        )
        manifest = await asyncio.to_thread(
            write_dataset, generated.samples, lineage, quality, generated.rejected, self.data_dir
        )
        await datasets(self.redis).create(manifest)
        if not await self.redis.exists(f"{PREFIX}:finetune-published:{manifest.id}"):
            await self.publish(manifest.id, json.dumps(finetune_request(manifest)).encode())
            await self.redis.set(f"{PREFIX}:finetune-published:{manifest.id}", 1)
            metrics.FINETUNE_REQUESTS.inc()
        for sample in generated.samples:
            metrics.SAMPLES.labels(sample.technique).inc()
        for figure in ("rows", "distinct_2", "verbatim_copies", "pii_values"):
            metrics.DATASET_QUALITY.labels(figure).set(getattr(quality, figure))
        job.dataset_id = manifest.id
        await self.dispatcher.dispatch("dataset.published", manifest.id, finetune_request(manifest)["data"])
        return await self._finish(job, started)

    async def _finish(self, job: GenerationJob, started: float, error: str | None = None) -> GenerationJob:
        job.state, job.error = (JobState.FAILED, error) if error else (JobState.SUCCEEDED, None)
        await jobs(self.redis).save(job)
        metrics.JOBS.labels(job.state).inc()
        metrics.JOB_SECONDS.observe(time.perf_counter() - started)
        if error:
            await self.dispatcher.dispatch("job.failed", job.id, job.model_dump(mode="json"))
        return job
