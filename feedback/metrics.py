"""Prometheus metrics of jobs, samples, datasets and deliveries."""

from prometheus_client import Counter, Gauge, Histogram

from generators.registry import TECHNIQUES

JOBS = Counter("driftloop_jobs_total", "Generation jobs finished, by final state", ["state"])
JOB_SECONDS = Histogram(
    "driftloop_job_duration_seconds",
    "Wall time of a generation job",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
SAMPLES = Counter("driftloop_samples_generated_total", "Samples kept in datasets, by technique", ["technique"])
SAMPLES_REJECTED = Counter(
    "driftloop_samples_rejected_total", "Samples dropped before a dataset, by reason", ["reason"]
)
QUALITY_GATE_FAILURES = Counter("driftloop_quality_gate_failures_total", "Jobs that failed the quality gate")
DATASET_QUALITY = Gauge("driftloop_dataset_quality", "Quality figures of the last dataset version", ["figure"])
FINETUNE_REQUESTS = Counter("driftloop_finetune_requests_published_total", "Messages published on finetune.requests")
WEBHOOK_DELIVERIES = Counter("driftloop_webhook_deliveries_total", "Webhook deliveries by final outcome", ["outcome"])
WEBHOOK_SECONDS = Histogram("driftloop_webhook_delivery_seconds", "Latency of one webhook delivery attempt")
WEBHOOK_DEAD_LETTERS = Counter(
    "driftloop_webhook_dead_letters_total", "Webhook messages given up after the last retry", ["event_type"]
)
WEBHOOK_REPLAYS = Counter("driftloop_webhook_replays_total", "Dead-letter replays by outcome", ["outcome"])
JOB_TAKEOVERS = Counter("driftloop_job_takeovers_total", "Running jobs taken over after their worker's lease lapsed")
for state in ("succeeded", "failed", "cancelled"):
    JOBS.labels(state)
for technique in TECHNIQUES:
    SAMPLES.labels(technique)
SAMPLES_REJECTED.labels("duplicate")
for outcome in ("delivered", "failed", "refused"):
    WEBHOOK_DELIVERIES.labels(outcome)
for outcome in ("delivered", "failed"):
    WEBHOOK_REPLAYS.labels(outcome)
for event_type in ("incident.opened", "dataset.published", "job.failed"):
    WEBHOOK_DEAD_LETTERS.labels(event_type)
