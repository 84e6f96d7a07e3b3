"""The ``finetune.requests`` message: a CloudEvents 1.0 envelope around a published dataset version.

The event id is the dataset id, so a consumer that dedups on ``id`` sees each version once even when
the worker republishes after a crash.
"""

from __future__ import annotations

from datetime import UTC, datetime

from feedback.datasets import DatasetManifest

EVENT_TYPE = "driftloop.dataset.published"
SCHEMA_VERSION = "1"


def finetune_request(manifest: DatasetManifest) -> dict:
    """The message announcing ``manifest`` to training systems."""
    files = {f.name: f for f in manifest.files}
    return {
        "specversion": "1.0",
        "id": manifest.id,
        "type": EVENT_TYPE,
        "source": "driftloop/feedback",
        "subject": manifest.lineage.incident_id,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "dataschema": f"driftloop.finetune-request/v{SCHEMA_VERSION}",
        "data": {
            "dataset_id": manifest.id,
            "uri": f"file://{manifest.path}/train.jsonl",
            "manifest_uri": f"file://{manifest.path}/manifest.json",
            "sha256": files["train.jsonl"].sha256,
            "format": "openai-chat-jsonl",
            "rows": manifest.rows,
            "incident_id": manifest.lineage.incident_id,
            "incident_kind": manifest.lineage.incident_kind,
            "segment": manifest.lineage.segment,
            "quality": manifest.quality.model_dump(),
        },
    }
