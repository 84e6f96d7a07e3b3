"""Stress runs inside the service: run a suite, keep the run's summary in Redis, and turn a regression against
the last run into one ``robustness-regression`` incident naming the failing families.

The last summary of each suite is kept under ``driftloop:stress:last:<suite>`` (Redis persists it, so a
restarted worker compares with the run before the restart). The incident's id is a function of the suite and
the run, and it goes out through the :class:`~monitor.sink.IncidentSink`: stored once (``SET NX``), then
published, so a retried publication makes no duplicate record.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from redis.asyncio import Redis

from core import keys
from core.redact import redact
from generators.llm_client import Endpoint, LLMClient
from monitor.incidents import INCIDENT_NAMESPACE, SEVERITY, DriftIncident, Evidence, FeatureShift, IncidentKind
from monitor.sink import IncidentSink
from validation.metrics import StressMetrics
from validation.results import Regression, RunSummary, regressions
from validation.run import StressConfig, StressRun, stress_run
from validation.suite import load_suite

EVIDENCE_PER_FAMILY = 5


async def last_run(redis: Redis, suite: str) -> RunSummary | None:
    stored = await redis.get(keys.stress_last_run(suite))
    return RunSummary.model_validate_json(stored) if stored else None


async def last_runs(redis: Redis) -> list[RunSummary]:
    """The last run of every suite, the latest first."""
    found = [key async for key in redis.scan_iter(match=keys.stress_last_run("*"), count=500)]
    stored = await redis.mget(found) if found else []
    runs = [RunSummary.model_validate_json(raw) for raw in stored if raw]
    return sorted(runs, key=lambda run: run.finished_at, reverse=True)


def regression_incident(run: StressRun, found: list[Regression], prompts: dict[str, str]) -> DriftIncident:
    """One incident for the regressed families of ``run``: a feature shift per family and metric, and failing
    probes of those families (prompt and redacted reply) as evidence, for the generation job to target."""
    summary = run.summary
    families = {r.family for r in found}
    failing = [s for s in run.scores if s.family in families and not s.passed and s.probe_id in prompts]
    evidence: list[Evidence] = []
    for family in sorted(families):
        examples = [s for s in failing if s.family == family][:EVIDENCE_PER_FAMILY]
        evidence += [Evidence(prompt=prompts[s.probe_id], response=redact(s.reply)) for s in examples]
    return DriftIncident(
        id=str(uuid.uuid5(INCIDENT_NAMESPACE, f"stress:{summary.suite}#{summary.run_id}")),
        kind=IncidentKind.ROBUSTNESS_REGRESSION,
        severity=SEVERITY[IncidentKind.ROBUSTNESS_REGRESSION],
        segment=f"{summary.model}/stress/{summary.suite}",
        features=[
            FeatureShift(
                feature=f"{r.metric}:{r.family}",
                reference_mean=r.previous.rate,
                current_mean=r.current.rate,
                statistic=r.current.rate,
                threshold=r.previous.low if r.metric == "pass_rate" else r.previous.high,
                detector="wilson-interval",
            )
            for r in found
        ],
        detected_after_events=summary.scored,
        onset_event=0,
        evidence=evidence,
    )


async def scheduled_stress(
    suite_path: Path,
    endpoint: Endpoint,
    config: StressConfig,
    redis: Redis,
    sink: IncidentSink,
    metrics: StressMetrics | None = None,
) -> tuple[StressRun, DriftIncident | None]:
    """Run the suite at ``suite_path`` against ``endpoint``; on a regression against the suite's last run, emit
    one incident to ``sink``. The run becomes the suite's last run either way."""
    suite = load_suite(suite_path)
    async with LLMClient(endpoint) as client:
        run = await stress_run(suite, client, config)
    previous = await last_run(redis, suite.name)
    found = regressions(previous, run.summary) if previous is not None else []
    incident = None
    if found:
        incident = regression_incident(run, found, {p.id: p.prompt for p in suite.probes})
        await sink.emit(incident)
    await redis.set(keys.stress_last_run(suite.name), run.summary.model_dump_json())
    (metrics or StressMetrics.default()).record(run.summary, found)
    return run, incident
