"""What a dataset version says about itself: files with their sha256, lineage, quality, formats."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from generators.quality import QualityReport

MANIFEST_SCHEMA_VERSION = 3
"""Written into every new manifest; manifests without the field are version 1. Version 3 added ``kind``,
``heldout`` and the files' ``split``."""


class DatasetKind(StrEnum):
    TRAINING = "training"
    """Every row carries a teacher-written, checked target: announced on ``finetune.requests``."""
    EVALUATION = "evaluation"
    """Prompts and expected behaviour, no targets (no LLM endpoint was configured): never sent to fine-tuning."""


class Split(StrEnum):
    TRAIN = "train"
    EVALUATION = "evaluation"
    """The rows of an evaluation set outside its held-out split."""
    HELDOUT = "heldout"
    """Kept for verification of candidates: never exported for training."""


class FileEntry(BaseModel):
    name: str
    """Path inside the version's folder, ``/``-separated (``train.jsonl``, ``hf/train.parquet``)."""
    bytes: int
    sha256: str
    split: Split | None = None
    """The rows the file holds; None for files without rows (the quality card)."""

    @classmethod
    def of(cls, name: str, data: bytes, split: Split | None = None) -> FileEntry:
        return cls(name=name, bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), split=split)


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
    teacher: str | None = None
    """The model that wrote the targets; None for an evaluation set."""


class DatasetManifest(BaseModel):
    id: str
    content_hash: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    rows: int
    """Rows outside the held-out split (those of the training or evaluation files)."""
    kind: DatasetKind = DatasetKind.TRAINING
    heldout: int = 0
    """Rows of the held-out split (``heldout.jsonl``)."""
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
