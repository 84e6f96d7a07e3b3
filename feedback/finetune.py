"""The ``finetune.requests`` message: a CloudEvents 1.0 envelope around a published dataset version.

Its contract is ``schemas/finetune-request.v1.json`` (described in ``schemas/README.md``). The event id is
the dataset id, so a consumer that dedups on ``id`` sees each version once even when the worker republishes
after a crash; ``time`` is the version's creation time, so a republished message is identical.
"""

from __future__ import annotations

from feedback.exports import FORMATS
from feedback.manifest import DatasetManifest

EVENT_TYPE = "driftloop.dataset.published"
SOURCE = "driftloop/feedback"
SCHEMA_VERSION = "1"
DATASCHEMA = f"urn:driftloop:schema:finetune-request:v{SCHEMA_VERSION}"
PRIMARY_FORMAT = "openai-chat-jsonl"


def describe_exports(manifest: DatasetManifest) -> dict[str, dict]:
    """Each export of a version: its URI (file or folder) and every file in it with URI, size and sha256."""
    formats = manifest.formats or {f: name for f, name in FORMATS.items() if manifest.file(name)}
    described = {}
    for fmt, name in formats.items():
        entries = [f for f in manifest.files if f.name == name or f.name.startswith(name + "/")]
        files = [{"name": f.name, "uri": manifest.uri(f.name), "sha256": f.sha256, "bytes": f.bytes} for f in entries]
        described[fmt] = {"uri": manifest.uri(name), "files": files}
    return described


def finetune_request(manifest: DatasetManifest) -> dict:
    """The message announcing ``manifest`` to training systems."""
    described = describe_exports(manifest)
    primary = described[PRIMARY_FORMAT]["files"][0]
    lineage = manifest.lineage
    return {
        "specversion": "1.0",
        "id": manifest.id,
        "source": SOURCE,
        "type": EVENT_TYPE,
        "subject": lineage.incident_id,
        "time": manifest.created_at.isoformat(),
        "datacontenttype": "application/json",
        "dataschema": DATASCHEMA,
        "data": {
            "dataset_id": manifest.id,
            "content_hash": manifest.content_hash,
            "uri": primary["uri"],
            "sha256": primary["sha256"],
            "format": PRIMARY_FORMAT,
            "formats": sorted(described),
            "exports": described,
            "manifest_uri": manifest.uri("manifest.json"),
            "rows": manifest.rows,
            "incident_id": lineage.incident_id,
            "incident_kind": lineage.incident_kind,
            "segment": lineage.segment,
            "job_id": lineage.job_id,
            "recipe": lineage.recipe,
            "model": lineage.model,
            "quality": manifest.quality.model_dump(),
        },
    }
