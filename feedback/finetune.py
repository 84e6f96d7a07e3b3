"""The ``finetune.requests`` message: a CloudEvents 1.0 envelope around a published training set.

Its contract is ``schemas/finetune-request.v1.json`` (described in ``schemas/README.md``). The event id is
the dataset id, so a consumer that dedups on ``id`` sees each version once even when the worker republishes
after a crash; ``time`` is the version's creation time, so a republished message is identical. Evaluation sets
(no targets) are never sent to fine-tuning: :func:`announcement` is what their ``dataset.published`` webhook
carries.
"""

from __future__ import annotations

from feedback.exports import FORMATS
from feedback.manifest import DatasetKind, DatasetManifest

EVENT_TYPE = "driftloop.dataset.published"
SOURCE = "driftloop/feedback"
SCHEMA_VERSION = "1"
DATASCHEMA = f"urn:driftloop:schema:finetune-request:v{SCHEMA_VERSION}"
PRIMARY_FORMAT = "openai-chat-jsonl"


class NotForTraining(ValueError):
    """An evaluation set has no targets: it is not sent to fine-tuning."""

    def __init__(self, dataset_id: str) -> None:
        super().__init__(f"dataset {dataset_id} is an evaluation set (no targets): it is not sent to fine-tuning")
        self.dataset_id = dataset_id


def describe_exports(manifest: DatasetManifest) -> dict[str, dict]:
    """Each export of a version: its URI (file or folder) and every file in it with URI, size and sha256."""
    formats = manifest.formats or {f: name for f, name in FORMATS.items() if manifest.file(name)}
    described = {}
    for fmt, name in formats.items():
        entries = [f for f in manifest.files if f.name == name or f.name.startswith(name + "/")]
        files = [{"name": f.name, "uri": manifest.uri(f.name), "sha256": f.sha256, "bytes": f.bytes} for f in entries]
        described[fmt] = {"uri": manifest.uri(name), "files": files}
    return described


def announcement(manifest: DatasetManifest) -> dict:
    """What subscribers learn of a version (the ``data`` of ``dataset.published``); for a training set also the
    primary export (``uri``, ``sha256``, ``format``), as in the ``finetune.requests`` message."""
    described = describe_exports(manifest)
    lineage = manifest.lineage
    data = {
        "dataset_id": manifest.id,
        "content_hash": manifest.content_hash,
        "kind": str(manifest.kind),
        "formats": sorted(described),
        "exports": described,
        "manifest_uri": manifest.uri("manifest.json"),
        "rows": manifest.rows,
        "heldout_rows": manifest.heldout,
        "incident_id": lineage.incident_id,
        "incident_kind": lineage.incident_kind,
        "segment": lineage.segment,
        "job_id": lineage.job_id,
        "recipe": lineage.recipe,
        "model": lineage.model,
        "teacher": lineage.teacher,
        "quality": manifest.quality.model_dump(),
    }
    if manifest.kind == DatasetKind.TRAINING:
        primary = described[PRIMARY_FORMAT]["files"][0]
        data |= {"uri": primary["uri"], "sha256": primary["sha256"], "format": PRIMARY_FORMAT}
    return data


def finetune_request(manifest: DatasetManifest) -> dict:
    """The message announcing the training set ``manifest`` to training systems; :class:`NotForTraining` for an
    evaluation set."""
    if manifest.kind != DatasetKind.TRAINING:
        raise NotForTraining(manifest.id)
    return {
        "specversion": "1.0",
        "id": manifest.id,
        "source": SOURCE,
        "type": EVENT_TYPE,
        "subject": manifest.lineage.incident_id,
        "time": manifest.created_at.isoformat(),
        "datacontenttype": "application/json",
        "dataschema": DATASCHEMA,
        "data": announcement(manifest),
    }
