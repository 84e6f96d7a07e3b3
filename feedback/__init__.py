"""feedback: samples in, versioned datasets out, announced to training systems."""

from feedback.datasets import DatasetManifest, FileEntry, Lineage, heldout_rows, write_dataset
from feedback.finetune import finetune_request
from feedback.jobs import GenerationJob, JobState, job_id
from feedback.manifest import DatasetKind
from feedback.registry import AckStore, DatasetRegistry, is_open
from feedback.runner import JobRunner, datasets, jobs
from feedback.storage import ChecksumMismatch, DatasetStore
from feedback.targets import Targets, TargetWriter
from feedback.webhooks import Delivery, Dispatcher, Webhook, WebhookCreate, register, webhooks

__all__ = [
    "AckStore",
    "ChecksumMismatch",
    "DatasetKind",
    "DatasetManifest",
    "DatasetRegistry",
    "DatasetStore",
    "Delivery",
    "Dispatcher",
    "FileEntry",
    "GenerationJob",
    "JobRunner",
    "JobState",
    "Lineage",
    "TargetWriter",
    "Targets",
    "Webhook",
    "WebhookCreate",
    "datasets",
    "finetune_request",
    "heldout_rows",
    "is_open",
    "job_id",
    "jobs",
    "register",
    "webhooks",
    "write_dataset",
]
