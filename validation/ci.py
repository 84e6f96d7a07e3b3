"""A stress run for CI pipelines (``driftloop stress``): run a suite file, write the reports asked for, and
say which ``--fail-on`` conditions it breached."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from generators.llm_client import Endpoint, LLMClient
from validation.junit import write_junit
from validation.metrics import StressMetrics
from validation.report import write_html, write_json
from validation.run import StressConfig, StressRun, stress_run
from validation.scoring import LLMJudge
from validation.suite import load_suite
from validation.thresholds import Condition, check_families


@dataclass(frozen=True)
class Outputs:
    junit: Path | None = None
    json: Path | None = None
    html: Path | None = None


async def ci_stress(
    suite_path: Path,
    endpoint: Endpoint,
    config: StressConfig,
    conditions: list[Condition],
    outputs: Outputs,
    judge: bool = False,
    metrics: StressMetrics | None = None,
) -> tuple[StressRun, list[Condition]]:
    """Run the suite and write ``outputs``; returns the run and the conditions it breached. A suite or a
    condition that cannot be used raises before any probe is sent."""
    suite = load_suite(suite_path)
    check_families(conditions, suite.families)
    async with LLMClient(endpoint) as client:
        run = await stress_run(suite, client, config, LLMJudge(client) if judge else None)
    (metrics or StressMetrics.default()).record(run.summary, [])
    for path, write in (
        (outputs.junit, lambda p: write_junit(run, conditions, p)),
        (outputs.json, lambda p: write_json(run, p)),
        (outputs.html, lambda p: write_html(run, p)),
    ):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path)
    return run, [c for c in conditions if c.breached(run.summary)]
