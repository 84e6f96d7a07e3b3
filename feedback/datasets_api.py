"""Dataset versions over HTTP: list, detail, files."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Response
from fastapi.responses import FileResponse

from feedback.datasets import DatasetManifest
from feedback.runner import datasets
from monitor.api import Limit, Offset, RedisDep, found, paginate

router = APIRouter(prefix="/v1", tags=["datasets"])


@router.get("/datasets")
async def list_datasets(
    redis: RedisDep, response: Response, limit: Limit = 50, offset: Offset = 0
) -> list[DatasetManifest]:
    """Dataset versions, newest first."""
    paginate(response, await datasets(redis).count(), limit, offset)
    return await datasets(redis).list(limit, offset)


@router.get("/datasets/{dataset_id}")
async def get_dataset(dataset_id: str, redis: RedisDep) -> DatasetManifest:
    return found(await datasets(redis).get(dataset_id), "dataset", dataset_id)


@router.get("/datasets/{dataset_id}/files/{name}")
async def download_dataset_file(dataset_id: str, name: str, redis: RedisDep) -> FileResponse:
    """One file of a dataset version (``samples.parquet``, ``train.jsonl``, ``manifest.json``)."""
    manifest = found(await datasets(redis).get(dataset_id), "dataset", dataset_id)
    if name != "manifest.json" and name not in {f.name for f in manifest.files}:
        raise HTTPException(404, f"dataset {dataset_id} has no file {name!r}")
    return FileResponse(Path(manifest.path) / name, filename=f"{dataset_id}-{name}")
