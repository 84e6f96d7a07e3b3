"""Incident to published dataset: seconds from incidents opening together to each one's dataset version published
(its ``finetune.requests`` message for a training set), with the job concurrency of a worker against the same run
with one job at a time.

Run with ``make bench-loop`` (``python -m bench.loop [--incidents N] [--rounds N] [--concurrency N]``). It starts tansu
and redis-server and, for each job concurrency compared (1, then ``--concurrency``: by default the setting's, the CPUs
this process may use), one real ``driftloop worker`` with its own topics and consumer group. Each worker first runs one
warm-up job (the first loads the encoder and the PII detector). Then every round opens ``--incidents`` incidents at once
on each worker in turn (the same incidents: distinct segments, the kinds whose recipes are rule-based, real ShareGPT
evidence redacted as the monitor keeps it) and waits for their versions' publication records in Redis, or for their jobs
to end without one (the generators draw from the incident's id, a new one each run, so now and then a batch fails the
quality gate: counted in the table's last column, the errors printed below it). With no LLM endpoint here the versions
are evaluation sets, which are published without a ``finetune.requests`` message (only training sets are sent to
fine-tuning); a training set's message is sent in the same step, just before its record (the ``publishing`` stage). An
incident's figure is its record's ``published_at`` less its ``detected_at``.

The table gives p50 and p95 over every incident of every round, and the mean seconds of each stage read from the
worker's ``driftloop_loop_stage_seconds`` histogram (warm-up left out). Both workers take turns round by round, so
the load of a shared machine weighs on both alike: compare the ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from bench.throughput import fresh as fresh_settings
from core.redact import redact
from devtools.embedded import free_port, with_services, worker_process
from devtools.traffic import ShiftPlan, shifted_stream
from driftloop.kafka import ensure_topics
from driftloop.settings import Settings
from feedback.jobs import GenerationJob, JobState, jobs
from feedback.metrics import STAGES
from feedback.publishing import Publication, PublicationState, publications
from monitor.incidents import DriftIncident, Evidence

console = Console(width=160)  # the table is wide: a pipe or a log would cut it at 80 columns

KINDS = ("attack-wave", "input-shift", "robustness-regression", "quality-drop")
"""Incident kinds whose recipes are rule-based only (attack-hardening, edge-cases, robustness-hardening,
quality-recovery; latency-drift has none: on-call only)."""
EVIDENCE = 16


def evidence(kind: str, seed: int) -> list[Evidence]:
    """``EVIDENCE`` redacted events of real traffic (an attack wave's mostly jailbreaks), as the monitor keeps them."""
    plan = ShiftPlan(0, attack_share=0.8) if kind == "attack-wave" else None
    events = [e for e in shifted_stream(EVIDENCE * 4, plan, seed) if e["model"] == "gpt-4o-mini"][:EVIDENCE]
    return [Evidence(prompt=redact(e["prompt"][:400]), response=redact(e["response"][:200])) for e in events]


def incidents(count: int, round_: int, worker: str) -> list[DriftIncident]:
    """``count`` incidents of distinct segments (of ``worker``: a segment's earlier datasets are deduplicated
    against), each kind in turn; a round's evidence is the same for every worker."""
    return [
        DriftIncident(
            id=f"bench-{uuid.uuid4().hex[:12]}",
            kind=KINDS[n % len(KINDS)],
            segment=f"gpt-4o-mini/chat/{worker}-r{round_}-t{n}",
            features=[],
            detected_after_events=1000,
            onset_event=900,
            evidence=evidence(KINDS[n % len(KINDS)], seed=round_ * 100 + n),
        )
        for n in range(count)
    ]


@dataclass
class Worker:
    """A worker process with one job concurrency, on topics of its own, and what it measured."""

    concurrency: int
    settings: Settings
    seconds: list[float] = field(default_factory=list)
    """Incident to published version, every incident of every measured round."""
    failed: list[str] = field(default_factory=list)
    """Why each job of a measured round that ended without a dataset ended so (a quality gate's failure)."""
    warm_stages: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Stage → (sum, count) of the histogram after the warm-up round."""

    @property
    def name(self) -> str:
        return f"c{self.concurrency}"

    def open_and_wait(self, opened: list[DriftIncident], timeout: float) -> tuple[list[float], list[str]]:
        """Open ``opened`` now (their ``detected_at``), publish them to this worker's incidents topic and wait for
        each one's version to be published or its job to end without one; the seconds from opening to publication,
        and the errors of the jobs that ended without a version."""
        now = datetime.now(UTC)
        opened = [incident.model_copy(update={"detected_at": now}) for incident in opened]
        producer, topic = (
            KafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all"),
            self.settings.incidents_topic,
        )
        for incident in opened:
            producer.send(topic, key=incident.id.encode(), value=incident.model_dump_json().encode())
        producer.flush()
        producer.close()
        detected = {incident.id: incident.detected_at.timestamp() for incident in opened}
        seconds: dict[str, float] = {}
        errors: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while len(seconds) + len(errors) < len(opened):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(opened) - len(seconds) - len(errors)} jobs unfinished after {timeout:.0f} s")
            records, ended = asyncio.run(self.finished())
            for record in records:
                if record.incident_id in detected:
                    seconds[record.incident_id] = record.published_at.timestamp() - detected[record.incident_id]
            errors |= {job.incident_id: job.error or job.state for job in ended if job.incident_id in detected}
            time.sleep(0.5)
        return list(seconds.values()), list(errors.values())

    async def finished(self) -> tuple[list[Publication], list[GenerationJob]]:
        """This worker's publication records (newest first) that reached ``published``, and its jobs that ended
        without a dataset."""
        redis = Redis.from_url(self.settings.redis_url)
        try:
            found, ran = await publications(redis).list(limit=1000), await jobs(redis).list(limit=1000)
        finally:
            await redis.aclose()
        published = [r for r in found if r.state == PublicationState.PUBLISHED and r.published_at is not None]
        return published, [job for job in ran if job.finished and job.state != JobState.SUCCEEDED]

    def stages(self) -> dict[str, tuple[float, float]]:
        """Stage → (sum, count) of the worker's ``driftloop_loop_stage_seconds``."""
        text = httpx.get(f"http://127.0.0.1:{self.settings.worker_metrics_port}/metrics", timeout=10).text
        found: dict[str, list[float]] = {stage: [0.0, 0.0] for stage in STAGES}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if family.name == "driftloop_loop_stage_seconds" and sample.name.endswith(("_sum", "_count")):
                    found[sample.labels["stage"]][sample.name.endswith("_count")] = sample.value
        return {stage: (total, count) for stage, (total, count) in found.items()}


def fresh(settings: Settings, workdir: Path, concurrency: int, database: int) -> Settings:
    """:func:`bench.throughput.fresh` settings with a Redis database of their own: workers sharing a Redis database
    would sweep up each other's jobs (and publish them on their own finetune.requests topic)."""
    return fresh_settings(
        settings,
        workdir,
        redis_url=f"{settings.redis_url.rsplit('/', 1)[0]}/{database}",
        worker_metrics_port=free_port(),
        job_concurrency=concurrency,
    )


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile of ``values`` (linear between ranks)."""
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=4, help="incidents opening together each round")
    parser.add_argument("--rounds", type=int, default=10, help="measured rounds of each worker (after a warm-up)")
    parser.add_argument("--concurrency", type=int, default=None, help="job concurrency to compare with 1")
    parser.add_argument("--timeout", type=float, default=600, help="longest wait for one round's datasets")
    args = parser.parse_args()
    base = Settings(_env_file=None, kafka_bootstrap=None, redis_url=None)
    concurrencies = sorted({1, args.concurrency or base.job_concurrency})
    workdir = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    with with_services(base, workdir) as services, contextlib.ExitStack() as stack:
        workers = []
        for database, concurrency in enumerate(concurrencies, start=1):
            settings = fresh(services, workdir, concurrency, database)
            ensure_topics(settings)
            stack.enter_context(worker_process(settings, workdir / f"worker-{concurrency}.log"))
            workers.append(Worker(concurrency, settings))
        for worker in workers:
            with console.status(f"warm-up, job concurrency {worker.concurrency}"):
                worker.open_and_wait(incidents(1, 0, worker.name), args.timeout)
                worker.warm_stages = worker.stages()
        for round_ in range(1, args.rounds + 1):
            for worker in workers:
                opened = incidents(args.incidents, round_, worker.name)
                with console.status(f"round {round_}/{args.rounds}, job concurrency {worker.concurrency}"):
                    seconds, errors = worker.open_and_wait(opened, args.timeout)
                    worker.seconds, worker.failed = worker.seconds + seconds, worker.failed + errors
        report(workers, args)


def report(workers: list[Worker], args: argparse.Namespace) -> None:
    title = (
        f"incident to published dataset, {args.incidents} incidents opening together, "
        f"{args.rounds} rounds (seconds; stages: mean per incident)"
    )
    table = Table(title=title)
    for column in ("job concurrency", "p50", "p95", "max", *STAGES, "p95 ratio to 1", "no dataset"):
        table.add_column(column, justify="right")
    baseline = percentile(workers[0].seconds, 0.95)
    for worker in workers:
        ended = worker.stages()
        means = []
        for stage in STAGES:
            total, count = (ended[stage][i] - worker.warm_stages[stage][i] for i in (0, 1))
            means.append(f"{total / count:.1f}" if count else "–")
        p95 = percentile(worker.seconds, 0.95)
        table.add_row(
            str(worker.concurrency),
            f"{percentile(worker.seconds, 0.5):.1f}",
            f"{p95:.1f}",
            f"{max(worker.seconds):.1f}",
            *means,
            f"{p95 / baseline:.2f}",
            str(len(worker.failed)),
        )
    console.print(table)
    for worker in workers:
        for error in worker.failed:
            console.print(f"c{worker.concurrency}: a job ended without a dataset: {error}")


if __name__ == "__main__":
    main()
