"""feedback: samples in, versioned datasets out, announced to training systems."""

from feedback.datasets import DatasetManifest, FileEntry, Lineage, write_dataset
from feedback.finetune import finetune_request
from feedback.jobs import GenerationJob, JobState, job_id
from feedback.runner import JobRunner, datasets, jobs
from feedback.webhooks import Delivery, Dispatcher, Webhook, WebhookCreate, register, webhooks

__all__ = [
    "DatasetManifest",
    "Delivery",
    "Dispatcher",
    "FileEntry",
    "GenerationJob",
    "JobRunner",
    "JobState",
    "Lineage",
    "Webhook",
    "WebhookCreate",
    "datasets",
    "finetune_request",
    "job_id",
    "jobs",
    "register",
    "webhooks",
    "write_dataset",
]
