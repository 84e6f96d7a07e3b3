"""Prometheus metrics of jobs, datasets and deliveries."""

from prometheus_client import Counter, Histogram

JOBS = Counter("driftloop_jobs_total", "Generation jobs by final state", ["state"])
JOB_SECONDS = Histogram("driftloop_job_duration_seconds", "Wall time of a generation job")
SAMPLES = Counter("driftloop_samples_generated_total", "Samples kept in datasets, by technique", ["technique"])
FINETUNE_REQUESTS = Counter("driftloop_finetune_requests_published_total", "Messages published on finetune.requests")
WEBHOOK_DELIVERIES = Counter("driftloop_webhook_deliveries_total", "Webhook deliveries by outcome", ["outcome"])
WEBHOOK_SECONDS = Histogram("driftloop_webhook_delivery_seconds", "Latency of one webhook delivery attempt")
