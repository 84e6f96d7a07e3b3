"""Candidate models that training systems report back for a dataset version, and their verification record.

A training system that fine-tuned a model on a version reports it (``POST /v1/datasets/{id}/candidates`` or a
``finetune.results`` message, contract ``schemas/finetune-result.v1.json``): an OpenAI-compatible endpoint and
model name. Reporting is idempotent by candidate id: the same report again returns the stored candidate, a
different one under the same id is a conflict. The endpoint must pass the egress policy (as webhook receivers
do) unless the candidate settings allow it. A reported candidate waits in ``CANDIDATES_ACTIVE`` until a worker's
verifier (``feedback.verifier``) takes it.

>>> report = CandidateReport(candidate_id="ft-1", base_url="http://vllm:8000/v1/", model="m")
>>> report.base_url
'http://vllm:8000/v1'
>>> CandidateReport(candidate_id="ft 1", base_url="ftp://x", model="m")
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 2 validation errors for CandidateReport
...
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator
from redis.asyncio import Redis

from core import keys
from core.errors import Conflict
from core.store import Collection
from feedback.egress import EgressPolicy
from feedback.manifest import DatasetManifest
from validation.verdict import Verdict


def _now() -> datetime:
    return datetime.now(UTC)


class CandidateReport(BaseModel):
    """What a training system says about a model it trained on a dataset version."""

    model_config = ConfigDict(extra="forbid")

    candidate_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$", description="the training system's id of the model; dedup key"
    )
    base_url: str = Field(
        max_length=2000, description="OpenAI-compatible endpoint serving it, e.g. http://vllm:8000/v1"
    )
    model: str = Field(min_length=1, max_length=200, description="model name to send to the endpoint")
    system_prompt: str | None = Field(
        None, max_length=8000, description="the system prompt it is deployed with; unset = production's"
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as error:
            raise ValueError(f"not a URL: {error}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("an http(s) URL with a host")
        return url.rstrip("/")


class CandidateState(StrEnum):
    REPORTED = "reported"
    VERIFYING = "verifying"
    VERIFIED = "verified"
    REJECTED = "rejected"
    FAILED = "failed"
    """Verification could not run to its end (production endpoint missing or down) after its attempts."""


FINISHED = frozenset({CandidateState.VERIFIED, CandidateState.REJECTED, CandidateState.FAILED})


class Candidate(BaseModel):
    """A reported candidate model and where its verification stands (``verdict`` once it has one)."""

    id: str
    dataset_id: str
    incident_id: str
    segment: str
    base_url: str
    model: str
    system_prompt: str | None = None
    source: str = Field(description="how it was reported: api or finetune.results")
    state: CandidateState = CandidateState.REPORTED
    attempts: int = 0
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
    error: str | None = None
    verdict: Verdict | None = Field(None, description="the verification's verdict, once it has one")

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def same_report(self, report: CandidateReport, dataset_id: str) -> bool:
        return (self.dataset_id, self.base_url, self.model, self.system_prompt) == (
            dataset_id,
            report.base_url,
            report.model,
            report.system_prompt,
        )


class CandidateConflict(Conflict, ValueError):
    """A candidate id reported again with another dataset, endpoint, model or system prompt."""

    def __init__(self, candidate: Candidate) -> None:
        self.candidate = candidate
        super().__init__(
            f"candidate {candidate.id} was reported for dataset {candidate.dataset_id} as {candidate.model} at "
            f"{candidate.base_url}; report a new model under a new id"
        )


def candidates(redis: Redis) -> Collection[Candidate]:
    return Collection(redis, keys.CANDIDATE, Candidate)


def candidate_policy(allow_private: bool, allowed: str) -> EgressPolicy:
    """The egress policy of candidate endpoints, from the candidate settings."""
    return EgressPolicy.parse(allow_private, allowed, "candidate endpoint", "DRIFTLOOP_CANDIDATE")


async def report_candidate(
    redis: Redis, manifest: DatasetManifest, report: CandidateReport, source: str, policy: EgressPolicy
) -> tuple[Candidate, bool]:
    """Store the candidate of ``report`` for ``manifest`` and queue its verification: (candidate, created).

    Raises ``ForbiddenDestination`` for an endpoint ``policy`` refuses and :class:`CandidateConflict` for an id
    reported before with something else.
    """
    if existing := await candidates(redis).get(report.candidate_id):
        if not existing.same_report(report, manifest.id):
            raise CandidateConflict(existing)
        return existing, False
    await policy.check_registration(report.base_url)
    candidate = Candidate(
        id=report.candidate_id,
        dataset_id=manifest.id,
        incident_id=manifest.lineage.incident_id,
        segment=manifest.lineage.segment,
        base_url=report.base_url,
        model=report.model,
        system_prompt=report.system_prompt,
        source=source,
    )
    await redis.sadd(keys.CANDIDATES_ACTIVE, candidate.id)  # before the record: a crash in between leaves it swept
    if await candidates(redis).create(candidate):
        return candidate, True
    return await report_candidate(redis, manifest, report, source, policy)  # another report of it got in first
