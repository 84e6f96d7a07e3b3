"""Prometheus metrics of calls to the LLM endpoint (catalogue in ``docs/metrics.md``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.metrics import AppMetrics


class LLMMetrics(AppMetrics):
    """What ``generators.llm_client`` counts: chat completions by outcome, tokens, latency, calls in flight and
    token budgets spent."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.requests = Counter(
            "driftloop_llm_requests_total",
            "Chat completions asked of the LLM endpoint, by outcome",
            ["model", "outcome"],
            registry=registry,
        )
        self.tokens = Counter(
            "driftloop_llm_tokens_total",
            "Tokens the LLM endpoint reported, by kind (prompt, completion)",
            ["model", "kind"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "driftloop_llm_request_seconds",
            "Latency of one chat completion, retries included",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.in_flight = Gauge(
            "driftloop_llm_requests_in_flight", "Chat completions sent and not yet answered", registry=registry
        )
        self.budget_exhausted = Counter(
            "driftloop_llm_budget_exhausted_total",
            "Token budgets (one per job) that ran out before all calls were made",
            registry=registry,
        )
