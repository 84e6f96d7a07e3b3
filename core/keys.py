"""Every Redis key driftloop uses, named in one place: ``driftloop:<thing>`` or ``driftloop:<thing>:<id>``.

The strings are the stored layout: changing one orphans the data under the old name.

>>> record(JOB, "7"), index(JOB), job_lease("7"), delivered("wh-1", "msg-2")
('driftloop:job:7', 'driftloop:jobs', 'driftloop:job-lease:7', 'driftloop:delivered:wh-1:msg-2')
"""

from __future__ import annotations

PREFIX = "driftloop"

# Collections (``core.store.Collection``): a record per id and an index of the ids by time.
INCIDENT = "incident"
JOB = "job"
DATASET = "dataset"
PUBLICATION = "publication"
WEBHOOK = "webhook"
DEAD_LETTER = "dead-letter"


def record(collection: str, record_id: str) -> str:
    """The record ``record_id`` of ``collection`` (a JSON string)."""
    return f"{PREFIX}:{collection}:{record_id}"


def index(collection: str) -> str:
    """The ids of ``collection``'s records, scored by their time (a sorted set)."""
    return f"{PREFIX}:{collection}s"


STREAM_COUNTS = f"{PREFIX}:stream"
"""Hash of the traffic stream's counters: ``accepted``, ``rejected:<reason>``."""
SEGMENT_STATUSES = f"{PREFIX}:segments"
"""Hash of segment → its monitor's latest status."""
REFERENCE_PINS = f"{PREFIX}:reference-pins"
"""Hash of segment → its pinned reference window."""
REFERENCE_APPLIED = f"{PREFIX}:reference-applied"
"""Hash of segment → the pin a worker took up."""
JOBS_ACTIVE = f"{PREFIX}:jobs-active"
"""Set of the ids of jobs that are not finished: what the sweeper looks at."""
FINETUNE_ACKS = f"{PREFIX}:finetune-acks"
"""Hash of dataset id → the acknowledgement of its ``finetune.requests`` message."""
DELIVERIES = f"{PREFIX}:deliveries"
"""Capped list of webhook delivery attempts, newest first."""
TOKENS = f"{PREFIX}:tokens"
"""Hash of token name → the SHA-256 of the token."""
AUDIT = f"{PREFIX}:audit"
"""Capped list of audit entries, newest first."""


def incident_changes(incident_id: str) -> str:
    """List of an incident's status changes, oldest first."""
    return f"{PREFIX}:incident-changes:{incident_id}"


def report(incident_id: str) -> str:
    """An incident's gzipped HTML report."""
    return f"{PREFIX}:report:{incident_id}"


def job_lease(job_id: str) -> str:
    """The owner of the live lease on a job (expires unless renewed)."""
    return f"{PREFIX}:job-lease:{job_id}"


def job_cancel(job_id: str) -> str:
    """Set when someone asked to cancel a job."""
    return f"{PREFIX}:job-cancel:{job_id}"


def job_input(job_id: str) -> str:
    """The incident a job works on, kept for reruns."""
    return f"{PREFIX}:job-incident:{job_id}"


def publication_claim(dataset_id: str) -> str:
    """Held while one approval publishes a dataset version."""
    return f"{PREFIX}:publication-claim:{dataset_id}"


def finetune_published(dataset_id: str) -> str:
    """Set once a version's ``finetune.requests`` message went out."""
    return f"{PREFIX}:finetune-published:{dataset_id}"


def delivered(webhook_id: str, message_id: str) -> str:
    """The successful delivery of a message to a webhook."""
    return f"{PREFIX}:delivered:{webhook_id}:{message_id}"


def dead_letter_claim(letter_id: str) -> str:
    """Held while one replay of a dead letter is in flight."""
    return f"{PREFIX}:dead-letter-claim:{letter_id}"


def token(digest: str) -> str:
    """A token's record, under the SHA-256 of the token."""
    return f"{PREFIX}:token:{digest}"


def idempotency(digest: str) -> str:
    """A stored POST response, under the SHA-256 of (token name, ``Idempotency-Key``, method, path)."""
    return f"{PREFIX}:idempotency:{digest}"


def stress_last_run(suite: str) -> str:
    """The summary of a stress suite's last run."""
    return f"{PREFIX}:stress:last:{suite}"
