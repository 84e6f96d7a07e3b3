"""Every app's metrics class: made on the registry it is given, one process default, every metric documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from core.metrics import AppMetrics, RedisMetrics
from driftloop.metrics import IngestMetrics
from feedback.metrics import FeedbackMetrics
from generators.metrics import LLMMetrics
from monitor.metrics import MonitorMetrics
from validation.metrics import StressMetrics

ROOT = Path(__file__).resolve().parents[2]
APPS = [MonitorMetrics, LLMMetrics, StressMetrics, FeedbackMetrics, RedisMetrics, IngestMetrics]


def touch_every_metric(metrics: AppMetrics) -> None:
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        child = metric.labels(*("x" for _ in metric._labelnames)) if metric._labelnames else metric
        if isinstance(child, Counter):
            child.inc()
        elif isinstance(child, Gauge):
            child.set(1)
        elif isinstance(child, Histogram):
            child.observe(1)


@pytest.mark.parametrize("app", APPS, ids=lambda c: c.__name__)
def test_two_registries_do_not_interfere(app: type[AppMetrics]) -> None:
    one, two = app(CollectorRegistry()), app(CollectorRegistry())
    untouched = generate_latest(two.registry)

    touch_every_metric(one)

    assert generate_latest(two.registry) == untouched
    assert generate_latest(one.registry) != untouched


@pytest.mark.parametrize("app", APPS, ids=lambda c: c.__name__)
def test_the_process_default_is_one_instance_on_the_default_registry(app: type[AppMetrics]) -> None:
    assert app.default() is app.default()
    assert app.default().registry is REGISTRY
    assert type(app.default()) is app


@pytest.mark.parametrize("app", APPS, ids=lambda c: c.__name__)
def test_every_metric_is_in_the_catalogue(app: type[AppMetrics]) -> None:
    documented = set(re.findall(r"`(driftloop_[a-z_]+)`", (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")))
    families = list(app(CollectorRegistry()).registry.collect())
    names = {f"{f.name}_total" if f.type == "counter" else f.name for f in families}
    assert names and names <= documented, sorted(names - documented)
