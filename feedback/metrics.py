"""Prometheus metrics of jobs, samples, datasets and deliveries (catalogue in ``docs/metrics.md``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.metrics import AppMetrics
from generators.registry import TECHNIQUES


class FeedbackMetrics(AppMetrics):
    """What the job runner, the publisher and the webhook dispatcher count."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.jobs = Counter(
            "driftloop_jobs_total", "Generation jobs finished, by final state", ["state"], registry=registry
        )
        self.job_seconds = Histogram(
            "driftloop_job_duration_seconds",
            "Wall time of a generation job",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.samples = Counter(
            "driftloop_samples_generated_total",
            "Samples kept in datasets, by technique",
            ["technique"],
            registry=registry,
        )
        self.samples_rejected = Counter(
            "driftloop_samples_rejected_total",
            "Samples dropped before a dataset, by reason",
            ["reason"],
            registry=registry,
        )
        self.quality_gate_failures = Counter(
            "driftloop_quality_gate_failures_total", "Jobs that failed the quality gate", registry=registry
        )
        self.dataset_quality = Gauge(
            "driftloop_dataset_quality", "Quality figures of the last dataset version", ["figure"], registry=registry
        )
        self.finetune_requests = Counter(
            "driftloop_finetune_requests_published_total",
            "Messages published on finetune.requests",
            registry=registry,
        )
        self.webhook_deliveries = Counter(
            "driftloop_webhook_deliveries_total",
            "Webhook deliveries by final outcome",
            ["outcome"],
            registry=registry,
        )
        self.webhook_attempts = Counter(
            "driftloop_webhook_attempts_total",
            "HTTP attempts of webhook deliveries, retries included, by outcome",
            ["outcome"],
            registry=registry,
        )
        self.webhook_seconds = Histogram(
            "driftloop_webhook_delivery_seconds", "Latency of one webhook delivery attempt", registry=registry
        )
        self.webhook_dead_letters = Counter(
            "driftloop_webhook_dead_letters_total",
            "Webhook messages given up after the last retry",
            ["event_type"],
            registry=registry,
        )
        self.webhook_replays = Counter(
            "driftloop_webhook_replays_total", "Dead-letter replays by outcome", ["outcome"], registry=registry
        )
        self.job_takeovers = Counter(
            "driftloop_job_takeovers_total",
            "Running jobs taken over after their worker's lease lapsed",
            registry=registry,
        )
        # Every known label value exists from the start, so rate() and increase() see the first event too.
        for state in ("succeeded", "failed", "cancelled"):
            self.jobs.labels(state)
        for technique in TECHNIQUES:
            self.samples.labels(technique)
        self.samples_rejected.labels("duplicate")
        for outcome in ("delivered", "failed", "refused"):
            self.webhook_deliveries.labels(outcome)
        for outcome in ("delivered", "failed"):
            self.webhook_attempts.labels(outcome)
            self.webhook_replays.labels(outcome)
        for event_type in ("incident.opened", "dataset.published", "job.failed"):
            self.webhook_dead_letters.labels(event_type)
