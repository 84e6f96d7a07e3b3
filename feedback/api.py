"""Jobs, datasets and webhooks over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from feedback.datasets import DatasetManifest
from feedback.jobs import GenerationJob
from feedback.runner import datasets, jobs
from feedback.webhooks import Delivery, Dispatcher, Webhook, WebhookCreate, WebhookView, register, webhooks
from monitor.api import Limit, Offset, RedisDep

router = APIRouter(prefix="/v1")
T = TypeVar("T")


@router.get("/jobs", tags=["jobs"])
async def list_jobs(redis: RedisDep, limit: Limit = 50, offset: Offset = 0) -> list[GenerationJob]:
    return await jobs(redis).list(limit, offset)


@router.get("/jobs/{job_id}", tags=["jobs"])
async def get_job(job_id: str, redis: RedisDep) -> GenerationJob:
    return _found(await jobs(redis).get(job_id), "job", job_id)


@router.get("/datasets", tags=["datasets"])
async def list_datasets(redis: RedisDep, limit: Limit = 50, offset: Offset = 0) -> list[DatasetManifest]:
    return await datasets(redis).list(limit, offset)


@router.get("/datasets/{dataset_id}", tags=["datasets"])
async def get_dataset(dataset_id: str, redis: RedisDep) -> DatasetManifest:
    return _found(await datasets(redis).get(dataset_id), "dataset", dataset_id)


@router.get("/datasets/{dataset_id}/files/{name}", tags=["datasets"])
async def download_dataset_file(dataset_id: str, name: str, redis: RedisDep) -> FileResponse:
    """One file of a dataset version (``samples.parquet``, ``train.jsonl``, ``manifest.json``)."""
    manifest = _found(await datasets(redis).get(dataset_id), "dataset", dataset_id)
    if name != "manifest.json" and name not in {f.name for f in manifest.files}:
        raise HTTPException(404, f"dataset {dataset_id} has no file {name!r}")
    return FileResponse(Path(manifest.path) / name, filename=f"{dataset_id}-{name}")


@router.post("/webhooks", status_code=201, tags=["webhooks"])
async def create_webhook(request: WebhookCreate, redis: RedisDep) -> Webhook:
    """Register a receiver; only this response carries the signing secret (Standard Webhooks ``whsec_…``)."""
    return await register(redis, request)


@router.get("/webhooks", tags=["webhooks"])
async def list_webhooks(redis: RedisDep) -> list[WebhookView]:
    """Registered receivers, without their secrets."""
    return [WebhookView.model_validate(hook.model_dump()) for hook in await webhooks(redis).list(limit=500)]


@router.get("/webhooks/deliveries", tags=["webhooks"])
async def list_deliveries(redis: RedisDep, limit: Limit = 100) -> list[Delivery]:
    """The delivery log, newest attempt first."""
    return await Dispatcher(redis).log(limit)


def _found(item: T | None, kind: str, item_id: str) -> T:
    if item is None:
        raise HTTPException(404, f"no {kind} {item_id}")
    return item
