"""What a dataset version says about itself: files with their sha256, lineage, quality, formats."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from generators.quality import QualityReport

MANIFEST_SCHEMA_VERSION = 2
"""Written into every new manifest; manifests without the field are version 1."""


class FileEntry(BaseModel):
    name: str
    """Path inside the version's folder, ``/``-separated (``train.jsonl``, ``hf/train.parquet``)."""
    bytes: int
    sha256: str

    @classmethod
    def of(cls, name: str, data: bytes) -> FileEntry:
        return cls(name=name, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


class Lineage(BaseModel):
    incident_id: str
    incident_kind: str
    segment: str
    job_id: str
    recipe: str
    generator_versions: dict[str, str]
    seed: str
    model: str | None = None
    """The LLM that generated samples; None when only rule generators ran."""


class DatasetManifest(BaseModel):
    id: str
    content_hash: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    rows: int
    lineage: Lineage
    quality: QualityReport
    rejected: dict[str, int]
    files: list[FileEntry]
    path: str
    """The version's folder: an absolute local path, or an fsspec URL (``s3://bucket/datasets/ds-…``)."""
    formats: dict[str, str] = Field(default_factory=dict)
    """Export format -> file or folder inside the version (``"hf-datasets": "hf"``)."""
    schema_version: int = 1

    def file(self, name: str) -> FileEntry | None:
        return next((f for f in self.files if f.name == name), None)

    def uri(self, name: str = "") -> str:
        """URI of the folder, or of ``name`` inside it (``file://`` for local folders)."""
        if "://" in self.path:
            return f"{self.path}/{name}" if name else self.path
        folder = Path(self.path)
        return (folder / name).as_uri() if name else folder.as_uri()
