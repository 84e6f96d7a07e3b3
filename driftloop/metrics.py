"""Metrics of the API: what it reads from shared state at scrape time (open incidents, jobs by state, datasets, LLM
backend), and what its OTLP ingest counts."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import httpx
import redis
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import SecretStr

from core import keys
from core.metrics import AppMetrics
from feedback.jobs import JobState
from monitor.incidents import SEVERITY
from monitor.spans import SpanOutcome

REQUEST_OUTCOMES = ("accepted", "malformed", "unsupported", "too_large", "full", "unavailable")


class IngestMetrics(AppMetrics):
    """What ``POST /v1/traces`` and its buffer count (``driftloop.otlp_api``, ``driftloop.traffic_buffer``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.requests = self.counter("driftloop_otlp_requests_total", "OTLP trace export requests", ["outcome"])
        self.spans = self.counter("driftloop_otlp_spans_total", "Spans of accepted OTLP requests", ["outcome"])
        self.published = self.counter(
            "driftloop_otlp_events_published_total", "Traffic events from spans sent to the broker", ["outcome"]
        )
        self.buffered = self.gauge("driftloop_otlp_buffered_events", "Traffic events waiting for the broker")
        self.broker_up = self.gauge("driftloop_otlp_broker_up", "0 while the broker does not take traffic events")
        self.broker_up.set(1)
        for outcome in REQUEST_OUTCOMES:
            self.requests.labels(outcome)
        for span_outcome in SpanOutcome:
            self.spans.labels(span_outcome)
        for published in ("published", "dropped"):
            self.published.labels(published)


class RecordsCollector(Collector):
    """Reads Redis on each scrape, so every API replica reports the same numbers."""

    def __init__(self, redis_url: str, llm_base_url: str | None = None, llm_api_key: SecretStr | None = None) -> None:
        self.redis = redis.Redis.from_url(redis_url)
        self.llm_base_url = llm_base_url
        self.llm_api_key = llm_api_key

    def _records(self, name: str) -> list[dict]:
        ids = self.redis.zrange(keys.index(name), 0, -1)
        raws = self.redis.mget([keys.record(name, i.decode()) for i in ids]) if ids else []
        return [json.loads(raw) for raw in raws if raw]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        open_incidents = GaugeMetricFamily(
            "driftloop_incidents_open", "Open drift incidents", labels=["kind", "severity"]
        )
        incident_records = self._records(keys.INCIDENT)
        counts = Counter((i["kind"], i["severity"]) for i in incident_records if i["status"] == "open")
        causes = GaugeMetricFamily(
            "driftloop_incident_causes_open",
            "Causes named by open drift incidents (primary: the incident's kind, its most urgent cause)",
            labels=["kind", "severity", "primary"],
        )
        named = Counter(
            (c["kind"], c["severity"], str(c["kind"] == i["kind"]).lower())
            for i in incident_records
            if i["status"] == "open"
            for c in i.get("causes", [])
        )
        for kind, severity in SEVERITY.items():
            open_incidents.add_metric([kind, severity], counts.get((kind, severity), 0))
            for primary in ("true", "false"):
                causes.add_metric([kind, severity, primary], named.get((kind, severity, primary), 0))
        jobs = GaugeMetricFamily("driftloop_jobs", "Generation jobs by state", labels=["state"])
        states = Counter(job["state"] for job in self._records(keys.JOB))
        for state in JobState:
            jobs.add_metric([state], states.get(state, 0))
        datasets = GaugeMetricFamily("driftloop_datasets", "Dataset versions published")
        datasets.add_metric([], self.redis.zcard(keys.index(keys.DATASET)))
        yield from (open_incidents, causes, jobs, datasets)
        if self.llm_base_url:
            up = GaugeMetricFamily("driftloop_llm_backend_up", "1 when the LLM endpoint answers GET /models")
            up.add_metric([], float(self._llm_up()))
            yield up

    def _llm_up(self) -> bool:
        try:
            headers = {"Authorization": f"Bearer {self.llm_api_key.get_secret_value()}"} if self.llm_api_key else {}
            return httpx.get(f"{self.llm_base_url.rstrip('/')}/models", headers=headers, timeout=1.0).is_success
        except httpx.HTTPError:
            return False
