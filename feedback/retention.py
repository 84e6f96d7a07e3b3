"""Retention: delete the oldest dataset versions beyond a count and/or age limit, never one whose
``finetune.requests`` message is still open (unacknowledged). Evaluation sets have no such message: the policy
alone decides for them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from feedback.manifest import DatasetKind, DatasetManifest
from feedback.registry import AckStore, DatasetRegistry
from feedback.storage import DatasetStore

MAX_AGE_DAYS = 36_500
"""A century: the longest age limit (a ``timedelta`` overflows past 999,999,999 days)."""


class RetentionPolicy(BaseModel):
    """Limits on the versions kept; both unset (the default) keeps everything."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"max_versions": 50, "max_age_days": 30}]})

    max_versions: int | None = Field(None, ge=1, description="keep at most this many versions, newest first")
    max_age_days: float | None = Field(
        None, gt=0, le=MAX_AGE_DAYS, description="versions older than this are due for deletion"
    )


class Decision(BaseModel):
    dataset_id: str
    created_at: datetime
    reason: str


class RetentionReport(BaseModel):
    policy: RetentionPolicy
    dry_run: bool
    deleted: list[Decision]
    kept: list[Decision]


def _overdue(rank: int, manifest: DatasetManifest, policy: RetentionPolicy, now: datetime) -> list[str]:
    reasons = []
    if policy.max_versions is not None and rank >= policy.max_versions:
        reasons.append(f"beyond the newest {policy.max_versions} versions")
    if policy.max_age_days is not None and now - manifest.created_at > timedelta(days=policy.max_age_days):
        reasons.append(f"older than {policy.max_age_days:g} days")
    return reasons


async def apply_retention(
    redis: Redis, policy: RetentionPolicy, now: datetime | None = None, dry_run: bool = False
) -> RetentionReport:
    """Delete (unless ``dry_run``) every version the policy marks as due and a training system has acknowledged."""
    now = now or datetime.now(UTC)
    registry, acks = DatasetRegistry(redis), AckStore(redis)
    deleted, kept = [], []
    for rank, manifest in enumerate(await registry.all()):
        due = _overdue(rank, manifest, policy, now)
        decision = Decision(dataset_id=manifest.id, created_at=manifest.created_at, reason="; ".join(due))
        if not due:
            decision.reason = "within the policy"
            kept.append(decision)
        elif manifest.kind == DatasetKind.TRAINING and await acks.is_open(manifest.id):
            decision.reason += "; kept: its fine-tuning request is open (not acknowledged)"
            kept.append(decision)
        else:
            if not dry_run:
                await asyncio.to_thread(DatasetStore.of(manifest).delete, manifest.id)
                await registry.remove(manifest.id)
                await acks.forget(manifest.id)
            deleted.append(decision)
    return RetentionReport(policy=policy, dry_run=dry_run, deleted=deleted, kept=kept)
