"""Events/s through one stream worker against consume-only throughput with the same Kafka client.

Run with ``make bench-throughput`` (``python -m bench.throughput [--events N] [--embedded-events N]``).
It starts tansu and redis-server, publishes real ShareGPT traffic (``devtools.traffic``) to a fresh topic
per run and measures, from the first event consumed to the last:

- **consume-only**: a Faust app (aiokafka underneath, as in the worker) whose agent takes the same batches
  as the worker and discards them;
- **worker, embeddings off / on**: the real ``driftloop worker`` process (parse → language → features →
  per-segment detectors → checkpoints, batched stream counters), read from its Redis stream counter; and
  the same run from the moment every segment had calibrated its reference (the segment statuses in Redis),
  which is the rate of a worker that has been running a while: calibrating a segment's ~40 detectors and 3
  windowed tests takes a few seconds of CPU, once per reference, and weighs on a short run.

Every path runs ``--repeats`` times, one after the other, and the table gives each one's median and range:
on a shared 2-core machine a single run of either moves by ±30%. The ratio of the medians, worker /
consume-only, is the figure to watch (goal: at least 0.5 with embeddings off).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import faust
import redis
from rich.console import Console
from rich.table import Table

from core import keys
from devtools.embedded import with_services, worker_process
from devtools.traffic import shifted_stream
from driftloop.kafka import ensure_topics, replay
from driftloop.settings import Settings

console = Console()


def fresh(settings: Settings, workdir: Path, **updates: object) -> Settings:
    """``settings`` with their own topics, consumer group and data dir (one measurement each)."""
    suffix = uuid.uuid4().hex[:8]
    return settings.model_copy(
        update={
            "app_id": f"bench-{suffix}",
            "traffic_topic": f"llm.traffic.{suffix}",
            "dlq_topic": f"llm.traffic.dlq.{suffix}",
            "incidents_topic": f"driftloop.incidents.{suffix}",
            "finetune_topic": f"finetune.requests.{suffix}",
            "data_dir": workdir / suffix,
            "worker_metrics_port": 0,
            **updates,
        }
    )


def consume_only(settings: Settings, events: int) -> float:
    """Events/s of a Faust agent that takes batches like the worker and discards them."""
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.group_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.group_session_timeout_s / 4),
        datadir=str(settings.data_dir / "faust"),
    )
    topic = app.topic(settings.traffic_topic, key_serializer="raw", value_serializer="raw")
    seen: list[float] = []
    count = 0

    @app.agent(topic)
    async def discard(stream: faust.StreamT) -> None:
        nonlocal count
        async for batch in stream.take(settings.batch_max_events, within=settings.batch_within_s):
            if not seen:
                seen.append(time.perf_counter())
            count += len(batch)
            if count >= events:
                seen.append(time.perf_counter())

    async def run() -> float:
        await app.start()
        try:
            while len(seen) < 2:
                await asyncio.sleep(0.05)
        finally:
            await app.stop()
        return events / (seen[1] - seen[0])

    return asyncio.run(run())


def rate(since: tuple[float, int], now: float, accepted: int) -> float:
    if accepted == since[1]:
        raise RuntimeError(f"all {accepted} events were accepted at once: too few to time, run more")
    return (accepted - since[1]) / (now - since[0])


def worker_path(settings: Settings, events: int, log: Path) -> tuple[float, float | None]:
    """Events/s of the real worker process, from its first accepted event to the ``events``-th, and from the first
    moment every segment had its reference calibrated (None if that came too late to time)."""
    client = redis.Redis.from_url(settings.redis_url)
    client.delete(keys.STREAM_COUNTS, keys.SEGMENT_STATUSES)
    first = calibrated = None
    with worker_process(settings, log) as worker:
        while True:
            statuses = [json.loads(raw) for raw in client.hvals(keys.SEGMENT_STATUSES)]
            accepted = sum(status["events"] for status in statuses)  # what GET /v1/stream calls accepted
            now = time.perf_counter()
            if accepted and first is None:
                first = (now, accepted)
            if calibrated is None and statuses and all(status["state"] != "reference" for status in statuses):
                calibrated = (now, accepted)
            if accepted >= events:
                steady = rate(calibrated, now, accepted) if calibrated and accepted - calibrated[1] > 1000 else None
                return rate(first, now, accepted), steady
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with code {worker.returncode}; see {log}")
            time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events",
        type=int,
        default=60_000,
        help="events per run without embeddings (long enough for calibration to weigh as it does in a running service)",
    )
    parser.add_argument(
        "--embedded-events", type=int, default=1500, help="events of the run with embeddings on (0: no such run)"
    )
    parser.add_argument("--sample-rate", type=float, default=0.2, help="DRIFTLOOP_EMBEDDING_SAMPLE_RATE of that run")
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds of every path, one after the other (a shared machine is noisy)"
    )
    args = parser.parse_args()
    lines = [json.dumps(event) for event in shifted_stream(args.events, None, seed=3)]
    workdir = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    runs = [("worker, embeddings off", len(lines), {"embeddings": False})]
    if args.embedded_events:
        runs.append(
            (f"worker, embeddings on ({args.sample_rate:.0%} sampled)", args.embedded_events, {"embeddings": True})
        )
    rates: dict[tuple[str, int], list[float]] = {}
    with with_services(Settings(_env_file=None, kafka_bootstrap=None, redis_url=None), workdir) as settings:
        for round_ in range(1, args.repeats + 1):
            with console.status(f"round {round_}/{args.repeats}: consume-only"):
                consume = fresh(settings, workdir)
                ensure_topics(consume)
                replay(lines, consume)
                rates.setdefault(("consume-only (Faust/aiokafka, discard)", len(lines)), []).append(
                    consume_only(consume, len(lines))
                )
            for label, count, updates in runs:
                with console.status(f"round {round_}/{args.repeats}: {label}"):
                    run = fresh(settings, workdir, embedding_sample_rate=args.sample_rate, **updates)
                    ensure_topics(run)
                    replay(lines[:count], run)
                    overall, steady = worker_path(run, count, workdir / f"{run.app_id}.log")
                    rates.setdefault((label, count), []).append(overall)
                    if steady is not None:
                        rates.setdefault(("  the same, once its segments are calibrated", count), []).append(steady)
    baseline = statistics.median(next(iter(rates.values())))
    table = Table(title=f"stream worker throughput (one worker, one partition; median of {args.repeats} rounds)")
    for column in ("path", "events", "events/s", "range", "ratio to consume-only"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for (label, count), measured in rates.items():
        median = statistics.median(measured)
        spread = f"{min(measured):,.0f}–{max(measured):,.0f}"
        table.add_row(label, str(count), f"{median:,.0f}", spread, f"{median / baseline:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
