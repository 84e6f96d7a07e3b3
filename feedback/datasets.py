"""Dataset versions: content-addressed folders of every export plus a manifest, written atomically to a
``DatasetStore`` (the local ``data_dir/datasets`` unless another store is given)."""

from __future__ import annotations

import hashlib
import json

from feedback import exports
from feedback.manifest import MANIFEST_SCHEMA_VERSION, DatasetManifest, FileEntry, Lineage
from feedback.storage import DatasetStore
from generators.quality import QualityReport
from generators.samples import Sample

SYSTEM_PROMPT = exports.SYSTEM_PROMPT

__all__ = ["SYSTEM_PROMPT", "DatasetManifest", "FileEntry", "Lineage", "content_hash", "write_dataset"]


def content_hash(samples: list[Sample], lineage: Lineage) -> str:
    """sha256 of the rows and lineage; a version's id is ``ds-`` and its first 16 hex digits.

    Unset lineage fields (``model=None``) are left out, so versions written before they existed keep their ids.
    """
    rows = [s.model_dump(mode="json") for s in samples]
    lineage_fields = lineage.model_dump(mode="json", exclude_none=True)
    canonical = json.dumps({"rows": rows, "lineage": lineage_fields}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def write_dataset(
    samples: list[Sample],
    lineage: Lineage,
    quality: QualityReport,
    rejected: dict[str, int],
    store: DatasetStore,
) -> DatasetManifest:
    """Write a dataset version to ``store``; an existing version is returned as is."""
    digest = content_hash(samples, lineage)
    dataset_id = f"ds-{digest[:16]}"
    if existing := store.manifest(dataset_id):
        return existing
    files = exports.render(samples, lineage, quality)
    manifest = DatasetManifest(
        id=dataset_id,
        content_hash=digest,
        rows=len(samples),
        lineage=lineage,
        quality=quality,
        rejected=rejected,
        files=[FileEntry.of(name, data) for name, data in sorted(files.items())],
        path=store.location(dataset_id),
        formats=dict(exports.FORMATS),
        schema_version=MANIFEST_SCHEMA_VERSION,
    )
    return store.write(manifest, files)
