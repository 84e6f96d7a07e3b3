"""Dataset versions over HTTP: filtered list, detail, verified file downloads, diffs, acks and retention."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import datetime
from typing import Annotated

import pyarrow.parquet as pq
from fastapi import APIRouter, Body, HTTPException, Request, Response
from redis.asyncio import Redis

from core.api import Limit, Offset, RedisDep, found, paginate
from feedback.datasets import QUALITY_CARD
from feedback.diff import DatasetDiff, diff
from feedback.exports import HELDOUT_FILE
from feedback.manifest import DatasetManifest
from feedback.registry import Ack, AckStore, DatasetFilter, DatasetRegistry
from feedback.retention import RetentionPolicy, RetentionReport, apply_retention
from feedback.storage import ChecksumMismatch, DatasetStore

router = APIRouter(prefix="/v1", tags=["datasets"])

MEDIA_TYPES = {
    ".jsonl": "application/jsonl",
    ".json": "application/json",
    ".parquet": "application/vnd.apache.parquet",
    ".md": "text/markdown; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}
CARD_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""The card is self-contained: no script, no request elsewhere."""


@router.get("/datasets")
async def list_datasets(
    redis: RedisDep,
    response: Response,
    incident_id: str | None = None,
    segment: str | None = None,
    technique: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[DatasetManifest]:
    """Dataset versions, newest first. ``segment`` matches a whole segment or a prefix of its parts
    (``gpt-4o-mini`` or ``gpt-4o-mini/chat``); ``technique``: versions with samples of that technique;
    time bounds are exclusive (naive times are UTC)."""
    where = DatasetFilter(
        incident_id=incident_id,
        segment=segment,
        technique=technique,
        created_after=created_after,
        created_before=created_before,
    )
    total, page = await DatasetRegistry(redis).query(where, limit, offset)
    paginate(response, total, limit, offset)
    return page


@router.post("/datasets/retention")
async def apply_dataset_retention(
    request: Request, redis: RedisDep, policy: Annotated[RetentionPolicy | None, Body()] = None, dry_run: bool = False
) -> RetentionReport:
    """Apply the retention policy now: delete the oldest versions beyond it that training systems acknowledged.

    The policy is the body's, or else the configured one (``DRIFTLOOP_RETENTION_*``); with no limit set nothing
    is deleted. ``dry_run=true`` reports what would be deleted.
    """
    return await apply_retention(redis, policy or _configured_policy(request), dry_run=dry_run)


@router.get("/datasets/{dataset_id}")
async def get_dataset(dataset_id: str, redis: RedisDep) -> DatasetManifest:
    return await _manifest(redis, dataset_id)


@router.get("/datasets/{dataset_id}/files/{name:path}", response_class=Response)
async def download_dataset_file(dataset_id: str, name: str, redis: RedisDep) -> Response:
    """One file of a version (``train.jsonl``, ``samples.parquet``, ``preference.jsonl``, ``hf/train.parquet``,
    ``hf/README.md``, ``manifest.json``), checked against its sha256 first: a file that changed is an error."""
    manifest = await _manifest(redis, dataset_id)
    if name != "manifest.json" and manifest.file(name) is None:
        raise HTTPException(404, f"dataset {dataset_id} has no file {name!r}")
    data = await _read(manifest, name)
    headers = {"Content-Disposition": f'attachment; filename="{dataset_id}-{name.replace("/", "-")}"'}
    if entry := manifest.file(name):
        headers["ETag"] = f'"{entry.sha256}"'
    media_type = next((t for suffix, t in MEDIA_TYPES.items() if name.endswith(suffix)), "application/octet-stream")
    return Response(data, media_type=media_type, headers=headers)


@router.get("/datasets/{dataset_id}/quality.html", response_class=Response)
async def get_quality_card(dataset_id: str, redis: RedisDep) -> Response:
    """The version's quality card: the gate's verdict and reasons, its figures against their thresholds, the
    removed samples and plots, as one self-contained HTML page (checked against its sha256 first)."""
    manifest = await _manifest(redis, dataset_id)
    if manifest.file(QUALITY_CARD) is None:
        raise HTTPException(404, f"dataset {dataset_id} was written before quality cards existed")
    data = await _read(manifest, QUALITY_CARD)
    return Response(data, media_type=MEDIA_TYPES[".html"], headers={"Content-Security-Policy": CARD_POLICY})


@router.get("/datasets/{dataset_id}/diff/{other_id}")
async def diff_datasets(dataset_id: str, other_id: str, redis: RedisDep) -> DatasetDiff:
    """How ``other_id`` differs from ``dataset_id``: rows only in each (by sample id), changes in the counts by
    technique and expected behaviour, and quality deltas (other minus this one)."""
    base, other = await _manifest(redis, dataset_id), await _manifest(redis, other_id)
    base_rows, other_rows = await asyncio.gather(_rows(base), _rows(other))
    return diff(base, base_rows, other, other_rows)


@router.post("/datasets/{dataset_id}/ack")
async def acknowledge_dataset(
    dataset_id: str, redis: RedisDep, consumer: Annotated[str | None, Body(embed=True, max_length=200)] = None
) -> Ack:
    """A training system acknowledges the version's ``finetune.requests`` message: it no longer needs driftloop
    to keep the files, so retention may delete them. Idempotent: the first ack is kept and returned."""
    await _manifest(redis, dataset_id)
    return await AckStore(redis).ack(dataset_id, consumer)


@router.get("/datasets/{dataset_id}/ack")
async def get_dataset_ack(dataset_id: str, redis: RedisDep) -> Ack:
    """The version's ack; 404 while its fine-tuning request is open."""
    await _manifest(redis, dataset_id)
    return found(await AckStore(redis).get(dataset_id), "ack for dataset", dataset_id)


async def _manifest(redis: Redis, dataset_id: str) -> DatasetManifest:
    return found(await DatasetRegistry(redis).get(dataset_id), "dataset", dataset_id)


async def _read(manifest: DatasetManifest, name: str) -> bytes:
    try:
        return await asyncio.to_thread(DatasetStore.of(manifest).read, manifest.id, name, manifest)
    except ChecksumMismatch as exc:
        raise HTTPException(500, f"stored file failed its checksum, not served: {exc}") from exc
    except FileNotFoundError as exc:
        raise HTTPException(404, f"dataset {manifest.id}: {name} is missing from storage") from exc


async def _rows(manifest: DatasetManifest) -> list[dict]:
    """Every row of the version, the held-out split's included, as ``samples.parquet`` has them."""
    rows = pq.read_table(io.BytesIO(await _read(manifest, "samples.parquet"))).to_pylist()
    if manifest.file(HELDOUT_FILE) is None:
        return rows
    for line in filter(None, (await _read(manifest, HELDOUT_FILE)).decode().splitlines()):
        held = json.loads(line)
        del held["messages"]  # the parquet rows have none: metadata is a JSON string there
        rows.append({**held, "metadata": json.dumps(held["metadata"], sort_keys=True)})
    return rows


def _configured_policy(request: Request) -> RetentionPolicy:
    """The policy of the app's settings (``app.state.settings``), if the app keeps them there."""
    settings = getattr(request.app.state, "settings", None)
    return RetentionPolicy(
        max_versions=getattr(settings, "retention_max_versions", None),
        max_age_days=getattr(settings, "retention_max_age_days", None),
    )
