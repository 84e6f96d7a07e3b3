"""Generation jobs: one per incident and recipe, however often the incident is delivered.

Lifecycle: ``queued → running → succeeded | failed | cancelled``. A running job is covered by a lease
(``feedback.leases``); a job left unfinished without a live lease (its worker died, or an attempt
failed) is re-run by the sweeper until it has used ``job_max_attempts``. Cancelling sets a flag that a
running job checks before it publishes; a job that nobody runs is cancelled on the spot.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator
from redis.asyncio import Redis

from core import keys
from core.errors import Conflict, Unprocessable
from core.redact import redact
from core.store import Collection
from feedback.leases import Lease
from feedback.metrics import FeedbackMetrics
from generators.recipes import RecipeBook
from monitor.incidents import INCIDENT_NAMESPACE, DriftIncident, Evidence, IncidentKind
from monitor.records import incidents
from monitor.sink import IncidentSink

JOB_NAMESPACE = uuid.UUID("0b6f1f7e-8f3c-4a55-a0b1-9e7c2d4f6a10")


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


def _now() -> datetime:
    return datetime.now(UTC)


class GenerationJob(BaseModel):
    id: str
    incident_id: str
    recipe: str
    samples: int | None = Field(None, description="samples to generate; unset = the worker's samples_per_job")
    seed: int | None = Field(None, description="generation seed; unset = the worker's job_seed")
    state: JobState = JobState.QUEUED
    attempts: int = Field(0, description="times a worker took the job, takeovers included")
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
    started_at: datetime | None = Field(None, description="when the latest attempt began")
    finished_at: datetime | None = None
    lease_owner: str | None = Field(None, description="the worker running the job")
    lease_expires_at: datetime | None = Field(None, description="when the lease lapses unless it is renewed")
    dataset_id: str | None = None
    error: str | None = Field(None, description="why the job failed or was cancelled; the last failed attempt's error")
    cancel_requested: bool = False

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


def job_id(incident_id: str, recipe: str) -> str:
    """The job id is a function of the incident and recipe, so redelivery finds the same job."""
    return str(uuid.uuid5(JOB_NAMESPACE, f"{incident_id}:{recipe}"))


def jobs(redis: Redis) -> Collection[GenerationJob]:
    return Collection(redis, keys.JOB, GenerationJob)


async def submit(
    redis: Redis, incident: DriftIncident, recipe: str, samples: int | None = None, seed: int | None = None
) -> GenerationJob:
    """The job of ``incident`` and ``recipe``: created queued (with its input kept for reruns) or found."""
    job = GenerationJob(
        id=job_id(incident.id, recipe), incident_id=incident.id, recipe=recipe, samples=samples, seed=seed
    )
    await redis.set(keys.job_input(job.id), incident.model_dump_json(), nx=True)
    await redis.sadd(keys.JOBS_ACTIVE, job.id)  # before the record: a crash in between leaves nothing unswept
    if await jobs(redis).create(job):
        return job
    return await jobs(redis).get(job.id) or job


async def stored_incident(redis: Redis, job_id: str) -> DriftIncident | None:
    raw = await redis.get(keys.job_input(job_id))
    return DriftIncident.model_validate_json(raw) if raw else None


async def cancel_requested(redis: Redis, job_id: str) -> bool:
    return bool(await redis.exists(keys.job_cancel(job_id)))


async def load(redis: Redis, job_id: str) -> GenerationJob | None:
    """A job record with its live lease (owner and expiry as renewed) and pending cancellation request."""
    job = await jobs(redis).get(job_id)
    if job is not None and not job.finished:
        job.cancel_requested = await cancel_requested(redis, job_id)
        owner, ttl_ms = await redis.get(keys.job_lease(job_id)), await redis.pttl(keys.job_lease(job_id))
        job.lease_owner = owner.decode() if owner else None
        job.lease_expires_at = _now() + timedelta(milliseconds=ttl_ms) if owner and ttl_ms > 0 else None
    return job


def finish(job: GenerationJob, state: JobState, error: str | None = None) -> GenerationJob:
    """``job`` in a final ``state``, without a lease."""
    job.state, job.error, job.cancel_requested = state, error, False
    job.finished_at = job.updated_at = _now()
    job.lease_owner = job.lease_expires_at = None
    return job


class ManualJob(BaseModel):
    """A recipe run by hand: on example prompts, or on the evidence of a segment's latest incident."""

    model_config = ConfigDict(extra="forbid")

    recipe: str = Field(description="a recipe name of the recipes file")
    segment: str | None = Field(
        None, min_length=1, description="model/route/tenant; without prompts, its latest incident's evidence is used"
    )
    prompts: list[str] = Field(
        default_factory=list, max_length=500, description="example prompts; redacted before they are stored"
    )
    count: int = Field(120, ge=1, le=10_000, description="samples to generate")
    seed: int = Field(0, description="same request and seed: same samples")

    @model_validator(mode="after")
    def _has_input(self) -> ManualJob:
        if not self.segment and not self.prompts:
            raise ValueError("give a segment, example prompts, or both")
        if any(not prompt.strip() for prompt in self.prompts):
            raise ValueError("example prompts must not be blank")
        return self


class NoEvidence(Unprocessable, ValueError):
    """A manual job names a segment without example prompts, and no incident of that segment has evidence."""

    def __init__(self, segment: str) -> None:
        super().__init__(f"no incident of segment {segment} has evidence to generate from; pass example prompts")
        self.segment = segment


async def _latest_evidence(redis: Redis, segment: str) -> list[Evidence]:
    for incident in await incidents(redis).list(limit=10_000):
        if incident.segment == segment and incident.evidence:
            return incident.evidence
    raise NoEvidence(segment)


async def submit_manual(redis: Redis, request: ManualJob, recipes: RecipeBook) -> GenerationJob:
    """Emit ``request`` as an incident of kind ``manual`` (prompts redacted as evidence), stored but not published,
    and queue its job, which the workers' sweeper runs like any other job. The same request names the same incident
    and job.

    Raises ``UnknownRecipe`` for a recipe the book lacks and :class:`NoEvidence` for a segment without evidence.
    """
    recipe = recipes.named(request.recipe)
    if request.prompts:
        evidence = [Evidence(prompt=redact(prompt)) for prompt in request.prompts]
    else:
        evidence = await _latest_evidence(redis, request.segment)
    identity = request.model_dump_json(exclude={"prompts"}) + "\0".join(e.prompt for e in evidence)
    incident = DriftIncident(
        id=f"manual-{uuid.uuid5(INCIDENT_NAMESPACE, identity)}",
        kind=IncidentKind.MANUAL,
        segment=request.segment or "manual",
        features=[],
        detected_after_events=0,
        onset_event=0,
        evidence=evidence,
    )
    await IncidentSink(redis).emit(incident)  # stored only: published, it would get a second job (its kind's recipe)
    return await submit(redis, incident, recipe.name, request.count, request.seed)


class JobFinished(Conflict, ValueError):
    """The job already ended, so it cannot be cancelled."""

    def __init__(self, job: GenerationJob) -> None:
        self.job = job
        super().__init__(f"job {job.id} already {job.state}")


async def cancel(redis: Redis, job_id: str, metrics: FeedbackMetrics | None = None) -> GenerationJob | None:
    """Cancel a job: at once when no worker holds it, else by a flag its worker checks before publishing.

    Returns the job (``cancel_requested`` while its worker has not stopped yet), None when there is no such
    job; raises ``JobFinished`` for a job that succeeded or failed.
    """
    job = await load(redis, job_id)
    if job is None or job.state == JobState.CANCELLED:
        return job
    if job.finished:
        raise JobFinished(job)
    await redis.set(keys.job_cancel(job_id), 1)
    lease = Lease(redis, job_id, f"cancel-{uuid.uuid4().hex[:8]}", seconds=10)
    if not await lease.acquire():
        job.cancel_requested = True
        return job
    try:
        job = await jobs(redis).get(job_id) or job
        if job.finished:
            if job.state != JobState.CANCELLED:
                raise JobFinished(job)
            return job
        await lease.write(
            keys.record(keys.JOB, job_id), finish(job, JobState.CANCELLED, "cancelled before it ran").model_dump_json()
        )
        await redis.srem(keys.JOBS_ACTIVE, job_id)
        (metrics or FeedbackMetrics.default()).jobs.labels(JobState.CANCELLED).inc()
        return job
    finally:
        await lease.release()
