"""Generation jobs: one per incident and recipe, whatever how often the incident is delivered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

JOB_NAMESPACE = uuid.UUID("0b6f1f7e-8f3c-4a55-a0b1-9e7c2d4f6a10")


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def _now() -> datetime:
    return datetime.now(UTC)


class GenerationJob(BaseModel):
    id: str
    incident_id: str
    recipe: str
    state: JobState = JobState.QUEUED
    attempts: int = 0
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
    dataset_id: str | None = None
    error: str | None = None


def job_id(incident_id: str, recipe: str) -> str:
    """The job id is a function of the incident and recipe, so redelivery finds the same job."""
    return str(uuid.uuid5(JOB_NAMESPACE, f"{incident_id}:{recipe}"))
