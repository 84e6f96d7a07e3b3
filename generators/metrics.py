"""Prometheus metrics of calls to the LLM endpoint (default registry; catalogue in ``docs/metrics.md``)."""

from prometheus_client import Counter, Gauge, Histogram

LLM_REQUESTS = Counter(
    "driftloop_llm_requests_total", "Chat completions asked of the LLM endpoint, by outcome", ["model", "outcome"]
)
LLM_TOKENS = Counter(
    "driftloop_llm_tokens_total", "Tokens the LLM endpoint reported, by kind (prompt, completion)", ["model", "kind"]
)
LLM_REQUEST_SECONDS = Histogram(
    "driftloop_llm_request_seconds",
    "Latency of one chat completion, retries included",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
LLM_IN_FLIGHT = Gauge("driftloop_llm_requests_in_flight", "Chat completions sent and not yet answered")
LLM_BUDGET_EXHAUSTED = Counter(
    "driftloop_llm_budget_exhausted_total", "Token budgets (one per job) that ran out before all calls were made"
)
