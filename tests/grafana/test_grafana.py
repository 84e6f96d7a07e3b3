"""grafana/: alert rules (promtool check and unit tests) and dashboards (structure, metric names, up to date).

promtool comes from Debian's ``prometheus`` package: without it those tests skip, and fail with
``DRIFTLOOP_REQUIRE_SERVICES=1``. That every dashboard query returns series on a running loop is checked by
``tests/integration/test_observability.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
REQUIRE_SERVICES = os.environ.get("DRIFTLOOP_REQUIRE_SERVICES") == "1"
EXPECTED = {"driftloop-overview", "driftloop-features", "driftloop-loop", "driftloop-quality", "driftloop-health"}


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"grafana_{name}", GRAFANA / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


exprs = _module("exprs")


def _documented_metrics() -> set[str]:
    return set(re.findall(r"`(driftloop_[a-z_]+)`", (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")))


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "promtool not found (Debian package prometheus)"
        if REQUIRE_SERVICES:
            pytest.fail(f"DRIFTLOOP_REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)
    return promtool


@pytest.mark.parametrize(
    "args", [("check", "rules", "grafana/alerts.yml"), ("test", "rules", "grafana/tests/alerts_test.yml")]
)
def test_promtool(args: tuple[str, ...]) -> None:
    done = subprocess.run([_promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


def test_every_rule_has_severity_annotations_and_a_unit_test() -> None:
    yaml = pytest.importorskip("yaml")
    [group] = yaml.safe_load((GRAFANA / "alerts.yml").read_text(encoding="utf-8"))["groups"]
    assert group["name"] == "driftloop"
    tests = yaml.safe_load((GRAFANA / "tests" / "alerts_test.yml").read_text(encoding="utf-8"))["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in group["rules"]:
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info", "{{ $labels.severity }}"}, name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name}: no unit test where it fires"
        assert any(not case["exp_alerts"] for case in mine), f"{name}: no unit test where it stays quiet"
        for metric in exprs.metric_names(rule["expr"]):
            assert metric in _documented_metrics(), f"{name}: {metric} is not in docs/metrics.md"


def test_dashboards_are_the_expected_ones() -> None:
    models = [json.loads(path.read_text(encoding="utf-8")) for path in DASHBOARDS]
    assert {path.stem for path in DASHBOARDS} == EXPECTED
    assert {model["uid"] for model in models} == EXPECTED


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_panels_query_documented_metrics(path: Path) -> None:
    model = json.loads(path.read_text(encoding="utf-8"))
    documented = _documented_metrics()
    panels = [panel for panel in exprs.panels(model) if panel["type"] != "row"]
    assert panels
    for panel in panels:
        title = panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, title
        targets = [t for t in panel.get("targets", []) if t.get("expr")]
        assert targets, f"{path.name}: panel {title!r} has no target with an expr"
        for target in targets:
            expr = target["expr"]
            assert "$__" not in expr, f"{title}: use fixed ranges, not Grafana interval variables: {expr}"
            for variable in re.findall(r"\$\{?(\w+)", expr):
                assert re.search(rf'=~"\$\{{?{variable}\}}?"', expr), f"{title}: ${variable} only as =~: {expr}"
            unknown = exprs.metric_names(expr) - documented
            assert not unknown, f"{path.name}: panel {title!r} uses {sorted(unknown)}, not in docs/metrics.md"
    for variable in model.get("templating", {}).get("list", []):
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        assert exprs.metric_names(query) <= documented, f"{path.name}: variable {variable['name']}"
    assert {v["name"] for v in model.get("templating", {}).get("list", [])} >= (
        {"segment", "feature"} if path.stem == "driftloop-features" else set()
    )


def test_dashboard_exprs_lists_every_target() -> None:
    found = exprs.dashboard_exprs(GRAFANA / "dashboards")
    titles = {json.loads(p.read_text(encoding="utf-8"))["title"] for p in DASHBOARDS}
    assert {title for title, _ in found} == titles
    assert all(expr.strip() for _, expr in found)


def test_dashboards_are_built_from_build_dashboards_py() -> None:
    try:
        import grafana_foundation_sdk  # noqa: F401
    except ImportError:
        if REQUIRE_SERVICES:
            pytest.fail("DRIFTLOOP_REQUIRE_SERVICES=1 but grafana-foundation-sdk is not installed")
        pytest.skip("grafana-foundation-sdk is not installed")
    done = subprocess.run(
        [sys.executable, str(GRAFANA / "build_dashboards.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
