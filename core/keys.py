"""Every Redis key driftloop uses, named in one place: ``driftloop:<thing>`` or ``driftloop:<thing>:<id>``.

The strings are the stored layout: changing one orphans the data under the old name.

>>> record(JOB, "7"), index(JOB), job_lease("7"), delivered("wh-1", "msg-2")
('driftloop:job:7', 'driftloop:jobs', 'driftloop:job-lease:7', 'driftloop:delivered:wh-1:msg-2')
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "driftloop"

# Collections (``core.store.Collection``): a record per id and an index of the ids by time.
INCIDENT = "incident"
JOB = "job"
DATASET = "dataset"
PUBLICATION = "publication"
WEBHOOK = "webhook"
DEAD_LETTER = "dead-letter"
CANDIDATE = "candidate"


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
AUDIT = f"{PREFIX}:audit-log"
"""Sorted set of audit entries (JSON) scored by their time; those past the retention are dropped on write."""
CANDIDATES_ACTIVE = f"{PREFIX}:candidates-active"
"""Set of the ids of candidate models whose verification has not ended: what the verifier's sweep looks at."""
OUTBOX_RECEIVERS = f"{PREFIX}:outbox-receivers"
"""Set of the webhooks that may have deliveries waiting in the outbox."""


@dataclass(frozen=True)
class Keyed:
    """Keys of one kind, one per id (or ids): ``driftloop:<kind>:<id>[:<id>…]``."""

    kind: str

    def __call__(self, *ids: str) -> str:
        return ":".join((PREFIX, self.kind, *ids))


incident_changes = Keyed("incident-changes")
"""List of an incident's status changes, oldest first."""
report = Keyed("report")
"""An incident's gzipped HTML report."""
job_lease = Keyed("job-lease")
"""The owner of the live lease on a job (expires unless renewed)."""
job_cancel = Keyed("job-cancel")
"""Set when someone asked to cancel a job."""
job_input = Keyed("job-incident")
"""The incident a job works on, kept for reruns."""
publication_claim = Keyed("publication-claim")
"""Held while one approval publishes a dataset version."""
finetune_published = Keyed("finetune-published")
"""Set once a version's ``finetune.requests`` message went out."""
delivered = Keyed("delivered")
"""The successful delivery of a message to a webhook."""
dead_letter_claim = Keyed("dead-letter-claim")
"""Held while one replay of a dead letter is in flight."""
token = Keyed("token")
"""A token's record, under the SHA-256 of the token."""
idempotency = Keyed("idempotency")
"""A stored POST response, under the SHA-256 of (token id, ``Idempotency-Key``, method, path)."""
audit_unauthenticated = Keyed("audit-unauthenticated")
"""How many calls refused with 401 were audited in one minute (by its number since the epoch; expires)."""
stress_last_run = Keyed("stress:last")
"""The summary of a stress suite's last run."""
outbox = Keyed("outbox")
"""A webhook's waiting deliveries: message ids scored by when they are due (ms since the epoch)."""
outbox_entry = Keyed("outbox-entry")
"""A waiting delivery of a message to a webhook (its event type and body)."""
