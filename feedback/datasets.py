"""Dataset versions: content-addressed folders of every export, the quality card (``quality.html``) and a
manifest, written atomically to a ``DatasetStore`` (the local ``data_dir/datasets`` unless another store is
given)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterator

import pyarrow.parquet as pq

from feedback import exports
from feedback.manifest import MANIFEST_SCHEMA_VERSION, DatasetManifest, FileEntry, Lineage
from feedback.storage import DatasetStore
from generators.card import render_card
from generators.quality import QualityReport, Seen, Views
from generators.samples import Sample

SYSTEM_PROMPT = exports.SYSTEM_PROMPT
QUALITY_CARD = "quality.html"

__all__ = [
    "QUALITY_CARD",
    "SYSTEM_PROMPT",
    "DatasetManifest",
    "FileEntry",
    "Lineage",
    "content_hash",
    "earlier_samples",
    "write_dataset",
]

log = logging.getLogger(__name__)


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
    views: Views | None = None,
) -> DatasetManifest:
    """Write a dataset version to ``store``; an existing version is returned as is. ``views`` (the gate's
    embeddings) add the embedding plots to the quality card."""
    digest = content_hash(samples, lineage)
    dataset_id = f"ds-{digest[:16]}"
    if existing := store.manifest(dataset_id):
        return existing
    card = render_card(
        quality,
        views,
        title=f"{lineage.recipe} for {lineage.segment}",
        incident=f"{lineage.incident_id} ({lineage.incident_kind})",
        segment=lineage.segment,
    )
    files = {**exports.render(samples, lineage, quality), QUALITY_CARD: card}
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


def earlier_samples(versions: list[DatasetManifest], segment: str, kind: str, job_id: str) -> Iterator[Seen]:
    """The samples of ``versions`` made for the same segment and incident kind by other jobs (a job's own
    earlier attempt is no earlier version), for the gate to deduplicate against. A version whose samples
    cannot be read any more is skipped with a warning."""
    for manifest in versions:
        lineage = manifest.lineage
        if (lineage.segment, lineage.incident_kind) != (segment, kind) or lineage.job_id == job_id:
            continue
        try:
            data = DatasetStore.of(manifest).read(manifest.id, "samples.parquet", manifest)
        except (OSError, ValueError) as error:
            log.warning("not deduplicating against %s: %s", manifest.id, error)
            continue
        rows = pq.read_table(io.BytesIO(data), columns=["technique", "prompt"]).to_pylist()
        yield from (Seen(manifest.id, row["technique"], row["prompt"]) for row in rows)
