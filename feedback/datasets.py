"""Dataset versions: content-addressed folders of every export, the held-out split (``heldout.jsonl``), the
quality card (``quality.html``) and a manifest, written atomically to a ``DatasetStore`` (the local
``data_dir/datasets`` unless another store is given).

A version whose quality report carries the teacher's report (``quality.targets``) is a training set; one
without is an evaluation set: prompts and expected behaviour, no targets."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterator

import pyarrow.parquet as pq

from feedback import exports
from feedback.manifest import MANIFEST_SCHEMA_VERSION, DatasetKind, DatasetManifest, FileEntry, Lineage
from feedback.splits import split
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
    "heldout_rows",
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
    embeddings) add the embedding plots to the quality card. The held-out split is drawn here, by technique and
    the lineage's seed."""
    kind = DatasetKind.EVALUATION if quality.targets is None else DatasetKind.TRAINING
    if kind == DatasetKind.EVALUATION:  # prompts and expected behaviour only: no target that no teacher checked
        samples = [s.model_copy(update={"reference_answer": ""}) for s in samples]
    elif bare := sum(not s.reference_answer for s in samples):
        raise ValueError(f"a training set needs a target on every row; {bare} rows have none")
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
    kept, heldout = split(samples, lineage.seed)
    rendered = exports.render(kept, heldout, lineage, quality, kind)
    files = {name: data for name, (data, _) in rendered.items()} | {QUALITY_CARD: card}
    manifest = DatasetManifest(
        id=dataset_id,
        content_hash=digest,
        rows=len(kept),
        kind=kind,
        heldout=len(heldout),
        lineage=lineage,
        quality=quality,
        rejected=rejected,
        files=[
            FileEntry.of(name, data, rendered[name][1] if name in rendered else None)
            for name, data in sorted(files.items())
        ],
        path=store.location(dataset_id),
        formats=dict(exports.FORMATS if kind == DatasetKind.TRAINING else exports.EVALUATION_FORMATS),
        schema_version=MANIFEST_SCHEMA_VERSION,
    )
    return store.write(manifest, files)


def heldout_rows(manifest: DatasetManifest) -> list[dict]:
    """The rows of ``manifest``'s held-out split, checked against the manifest's sha256: every sample field
    (``metadata`` an object), and ``messages`` (system, user, and the target as assistant in a training set).
    Empty for versions written before held-out splits existed."""
    if manifest.file(exports.HELDOUT_FILE) is None:
        return []
    data = DatasetStore.of(manifest).read(manifest.id, exports.HELDOUT_FILE, manifest)
    return [json.loads(line) for line in data.decode().splitlines() if line]


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
            rows = pq.read_table(io.BytesIO(data), columns=["technique", "prompt"]).to_pylist() + heldout_rows(manifest)
        except (OSError, ValueError) as error:
            log.warning("not deduplicating against %s: %s", manifest.id, error)
            continue
        yield from (Seen(manifest.id, row["technique"], row["prompt"]) for row in rows)
