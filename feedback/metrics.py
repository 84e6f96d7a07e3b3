"""Prometheus metrics of jobs, samples, datasets and deliveries (catalogue in ``docs/metrics.md``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from core.metrics import AppMetrics
from generators.registry import TECHNIQUES

STAGES = ("recipe", "queued", "generation", "targets", "quality_gate", "writing", "publishing")
"""An incident's way to ``finetune.requests``: its job made with its recipe, a free slot waited for, samples
generated, their targets written by the teacher (none for an evaluation set), the quality gate, the dataset written
and registered, the message published."""
STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 45, 60, 120, 300)


class FeedbackMetrics(AppMetrics):
    """What the job runner, the publisher and the webhook dispatcher count."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.jobs = self.counter("driftloop_jobs_total", "Generation jobs finished, by final state", ["state"])
        self.job_seconds = self.histogram(
            "driftloop_job_duration_seconds",
            "Wall time of a generation job",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )
        self.loop_stage_seconds = self.histogram(
            "driftloop_loop_stage_seconds",
            "Time a published dataset's incident spent in each stage on its way to finetune.requests, by stage",
            ["stage"],
            buckets=STAGE_BUCKETS,
        )
        self.loop_seconds = self.histogram(
            "driftloop_incident_to_finetune_seconds",
            "From an incident opening to its dataset's finetune.requests message",
            buckets=STAGE_BUCKETS,
        )
        self.samples = self.counter(
            "driftloop_samples_generated_total", "Samples kept in datasets, by technique", ["technique"]
        )
        self.samples_rejected = self.counter(
            "driftloop_samples_rejected_total", "Samples dropped before a dataset, by reason", ["reason"]
        )
        self.quality_gate_failures = self.counter(
            "driftloop_quality_gate_failures_total", "Jobs that failed the quality gate"
        )
        self.dataset_quality = self.gauge(
            "driftloop_dataset_quality", "Quality figures of the last dataset version", ["figure"]
        )
        self.finetune_requests = self.counter(
            "driftloop_finetune_requests_published_total", "Messages published on finetune.requests"
        )
        self.webhook_deliveries = self.counter(
            "driftloop_webhook_deliveries_total", "Webhook deliveries by final outcome", ["outcome"]
        )
        self.webhook_attempts = self.counter(
            "driftloop_webhook_attempts_total",
            "HTTP attempts of webhook deliveries, retries included, by outcome",
            ["outcome"],
        )
        self.webhook_seconds = self.histogram(
            "driftloop_webhook_delivery_seconds", "Latency of one webhook delivery attempt"
        )
        self.webhook_dead_letters = self.counter(
            "driftloop_webhook_dead_letters_total", "Webhook messages given up after the last retry", ["event_type"]
        )
        self.webhook_replays = self.counter(
            "driftloop_webhook_replays_total", "Dead-letter replays by outcome", ["outcome"]
        )
        self.job_takeovers = self.counter(
            "driftloop_job_takeovers_total", "Running jobs taken over after their worker's lease lapsed"
        )
        self.candidates_reported = self.counter(
            "driftloop_candidates_reported_total",
            "Candidate models reported by training systems, by source",
            ["source"],
        )
        self.candidate_verdicts = self.counter(
            "driftloop_candidate_verdicts_total",
            "Verifications of candidate models finished, by outcome (promote, reject, failed)",
            ["outcome"],
        )
        self.candidate_seconds = self.histogram(
            "driftloop_candidate_verification_seconds",
            "Wall time of one verification attempt (both models)",
            buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 3600),
        )
        self.candidate_incident_pass_rate = self.gauge(
            "driftloop_candidate_incident_pass_rate",
            "Pass rate on the incident's probes in the last verification, by model (production, candidate)",
            ["model"],
        )
        # Every known label value exists from the start, so rate() and increase() see the first event too.
        for state in ("succeeded", "failed", "cancelled"):
            self.jobs.labels(state)
        for stage in STAGES:
            self.loop_stage_seconds.labels(stage)
        for technique in TECHNIQUES:
            self.samples.labels(technique)
        self.samples_rejected.labels("duplicate")
        for outcome in ("delivered", "failed", "refused"):
            self.webhook_deliveries.labels(outcome)
        for outcome in ("delivered", "failed"):
            self.webhook_attempts.labels(outcome)
            self.webhook_replays.labels(outcome)
        for source in ("api", "finetune.results"):
            self.candidates_reported.labels(source)
        for outcome in ("promote", "reject", "failed"):
            self.candidate_verdicts.labels(outcome)
        for event_type in (
            "incident.opened",
            "dataset.published",
            "job.failed",
            "candidate.verified",
            "candidate.rejected",
        ):
            self.webhook_dead_letters.labels(event_type)
