"""Prometheus metrics of calls to the LLM endpoint (catalogue in ``docs/metrics.md``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from core.metrics import AppMetrics


class LLMMetrics(AppMetrics):
    """What ``generators.llm_client`` counts: chat completions by outcome, tokens, latency, calls in flight and
    token budgets spent."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.requests = self.counter(
            "driftloop_llm_requests_total",
            "Chat completions asked of the LLM endpoint, by outcome",
            ["model", "outcome"],
        )
        self.tokens = self.counter(
            "driftloop_llm_tokens_total",
            "Tokens the LLM endpoint reported, by kind (prompt, completion)",
            ["model", "kind"],
        )
        self.request_seconds = self.histogram(
            "driftloop_llm_request_seconds",
            "Latency of one chat completion, retries included",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )
        self.in_flight = self.gauge("driftloop_llm_requests_in_flight", "Chat completions sent and not yet answered")
        self.budget_exhausted = self.counter(
            "driftloop_llm_budget_exhausted_total",
            "Token budgets (one per job) that ran out before all calls were made",
        )
