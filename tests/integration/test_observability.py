"""Alert rules and dashboards against a real Prometheus and Alertmanager scraping a running loop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml

from devtools.embedded import (
    ServiceUnavailable,
    alertmanager_server,
    prometheus_server,
    serve_in_thread,
    worker_process,
)
from devtools.receiver import WebhookReceiver
from devtools.traffic import MODELS, ShiftPlan, shifted_stream
from driftloop.api import create_api
from driftloop.kafka import ensure_topics, replay
from driftloop.settings import Settings
from tests.integration.helpers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
EVENTS = 4000


@pytest.fixture
def api_url(settings: Settings) -> Iterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(create_api(settings), host="127.0.0.1", port=settings.api_port, log_level="warning")
    )
    serve_in_thread(server)
    yield f"http://127.0.0.1:{settings.api_port}"
    server.should_exit = True


def prometheus_config(settings: Settings, alertmanager: str) -> dict:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ROOT / "grafana" / "alerts.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.removeprefix("http://")]}]}]},
        "scrape_configs": [
            {"job_name": "driftloop-api", "static_configs": [{"targets": [f"127.0.0.1:{settings.api_port}"]}]},
            {
                "job_name": "driftloop-worker",
                "static_configs": [{"targets": [f"127.0.0.1:{settings.worker_metrics_port}"]}],
            },
        ],
    }


def alertmanager_config(receiver: WebhookReceiver) -> dict:
    return {
        "route": {
            "receiver": "test",
            "group_by": ["alertname", "kind"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "test", "webhook_configs": [{"url": receiver.url, "send_resolved": False}]}],
    }


def query(prometheus: str, expr: str) -> list[dict]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", f"{expr}: {answer}"
    return answer["data"]["result"]


def test_drift_alert_reaches_alertmanager_and_dashboards_have_data(
    settings: Settings, api_url: str, tmp_path: Path, require_services: bool
) -> None:
    ensure_topics(settings)
    with WebhookReceiver(secret=None) as receiver:
        (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config(receiver)))
        try:
            with alertmanager_server(tmp_path / "alertmanager.yml", tmp_path) as alertmanager:
                (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config(settings, alertmanager)))
                with (
                    prometheus_server(tmp_path / "prometheus.yml", tmp_path) as prometheus,
                    worker_process(settings, tmp_path / "worker.log"),
                ):
                    targets = wait_for(lambda: _healthy_targets(prometheus), 30, "both scrape targets up")
                    assert targets == {"driftloop-api", "driftloop-worker"}
                    assert not any(r.payload for r in receiver.received), "quiet before the shift"
                    plan = ShiftPlan(shift_at=EVENTS // 2, attack_model=MODELS[0], latency_model=None)
                    replay([json.dumps(e) for e in shifted_stream(EVENTS, plan, seed=21)], settings)
                    alerts = wait_for(lambda: _alerts(receiver), 120, "the drift alert at the receiver")
                    _check_dashboards(prometheus)
        except ServiceUnavailable as exc:
            if require_services:
                pytest.fail(f"DRIFTLOOP_REQUIRE_SERVICES=1 but {exc}")
            pytest.skip(str(exc))
    [alert] = [a for a in alerts if a["labels"]["alertname"] == "DriftIncidentOpened"]
    assert alert["labels"]["kind"] == "attack-wave" and alert["labels"]["severity"] == "critical"
    assert alert["status"] == "firing" and alert["annotations"]["runbook"]


def _healthy_targets(prometheus: str) -> set[str]:
    active = httpx.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    healthy = {t["labels"]["job"] for t in active if t["health"] == "up"}
    return healthy if len(healthy) == 2 else set()


def _alerts(receiver: WebhookReceiver) -> list[dict]:
    return [alert for r in receiver.received for alert in r.payload.get("alerts", [])]


def _check_dashboards(prometheus: str) -> None:
    """Every dashboard expression is valid PromQL for this Prometheus and returns series."""
    from grafana.exprs import dashboard_exprs

    exprs = dashboard_exprs(ROOT / "grafana" / "dashboards")
    assert exprs
    empty = []
    for title, expr in exprs:
        concrete = expr.replace("$segment", ".*").replace("$feature", ".*")
        if not query(prometheus, concrete):
            empty.append(f"{title}: {expr}")
    assert not empty, "expressions without series:\n" + "\n".join(empty)
