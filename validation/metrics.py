"""Prometheus metrics of stress runs (catalogue in ``docs/metrics.md``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from core.metrics import AppMetrics
from validation.results import Regression, RunSummary


class StressMetrics(AppMetrics):
    """What a stress run exports: pass and attack-success rates per family, runs by outcome, probe errors."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.pass_rate = self.gauge(
            "driftloop_stress_pass_rate", "Share of a family's probes that passed in the last run", ["suite", "family"]
        )
        self.attack_success = self.gauge(
            "driftloop_stress_attack_success_rate",
            "Share of a family's attack probes whose planted canary the model emitted in the last run",
            ["suite", "family"],
        )
        self.runs = self.counter(
            "driftloop_stress_runs_total", "Stress runs finished, by outcome (ok, regression)", ["suite", "outcome"]
        )
        self.probe_errors = self.counter(
            "driftloop_stress_probe_errors_total",
            "Probes whose reply never came (endpoint error, budget spent)",
            ["suite"],
        )

    def record(self, summary: RunSummary, found: list[Regression]) -> None:
        """Export one finished run."""
        for family, result in summary.families.items():
            self.pass_rate.labels(summary.suite, family).set(result.pass_rate.rate)
            if result.attack_success is not None:
                self.attack_success.labels(summary.suite, family).set(result.attack_success.rate)
        self.runs.labels(summary.suite, "regression" if found else "ok").inc()
        self.probe_errors.labels(summary.suite).inc(summary.errors)
