"""The PromQL of the dashboards in ``grafana/dashboards/``, for tests (standard library only).

Import it as ``grafana.exprs`` from the repository root, or by path with ``importlib``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: A driftloop metric name as written in an expression (histogram series still carry their suffix).
METRIC = re.compile(r"\bdriftloop_[a-z_]+")
_HISTOGRAM_SUFFIX = re.compile(r"_(bucket|count|sum)$")


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard model, rows and the panels inside collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panels(panel)


def dashboard_exprs(root: Path) -> list[tuple[str, str]]:
    """``(dashboard title, expr)`` of every panel target in the ``*.json`` dashboards directly under ``root``
    (``grafana/dashboards``), in file and panel order. Template variables (``$segment``, ``$feature``) are left
    as they are; they only appear as regex matchers, so substituting ``.*`` gives a query for every value.
    """
    found = []
    for path in sorted(Path(root).glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append((dashboard["title"], target["expr"]))
    return found


def metric_names(expr: str) -> set[str]:
    """The driftloop metrics an expression reads, histogram suffixes removed.

    >>> sorted(metric_names('sum(rate(driftloop_job_duration_seconds_bucket[5m])) / driftloop_datasets'))
    ['driftloop_datasets', 'driftloop_job_duration_seconds']
    """
    return {_HISTOGRAM_SUFFIX.sub("", name) for name in METRIC.findall(expr)}
