"""Prometheus metrics of stress runs (catalogue in ``docs/metrics.md``); registry injectable for tests."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from validation.results import Regression, RunSummary


class StressMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.pass_rate = Gauge(
            "driftloop_stress_pass_rate", "Share of a family's probes that passed in the last run", ["suite", "family"],
            registry=registry,
        )  # fmt: skip
        self.attack_success = Gauge(
            "driftloop_stress_attack_success_rate",
            "Share of a family's attack probes whose planted canary the model emitted in the last run",
            ["suite", "family"],
            registry=registry,
        )
        self.runs = Counter(
            "driftloop_stress_runs_total", "Stress runs finished, by outcome (ok, regression)", ["suite", "outcome"],
            registry=registry,
        )  # fmt: skip
        self.probe_errors = Counter(
            "driftloop_stress_probe_errors_total", "Probes whose reply never came (endpoint error, budget spent)",
            ["suite"], registry=registry,
        )  # fmt: skip

    def record(self, summary: RunSummary, found: list[Regression]) -> None:
        """Export one finished run."""
        for family, result in summary.families.items():
            self.pass_rate.labels(summary.suite, family).set(result.pass_rate.rate)
            if result.attack_success is not None:
                self.attack_success.labels(summary.suite, family).set(result.attack_success.rate)
        self.runs.labels(summary.suite, "regression" if found else "ok").inc()
        self.probe_errors.labels(summary.suite).inc(summary.errors)


_DEFAULT: StressMetrics | None = None


def default_metrics() -> StressMetrics:
    """The metrics on the process's default registry (created once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = StressMetrics()
    return _DEFAULT
