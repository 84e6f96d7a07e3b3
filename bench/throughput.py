"""Events/s through one stream worker (and a group of them) against consume-only throughput with the same Kafka
client, the worker's CPU time per event in each stage, and its memory per 1,000 live segments.

Run with ``make bench-throughput`` (``python -m bench.throughput [--events N] [--embedded-events N] [--segments N]``).
It starts tansu and redis-server, publishes real ShareGPT traffic (``devtools.traffic``) to a fresh topic per run
and measures, from the first event consumed to the last:

- **consume-only**: a Faust app with the worker's consumer (:class:`driftloop.consumer.App`: aiokafka underneath,
  its fetches waiting at the broker as long as the worker's) whose agent takes the same batches as the worker and
  discards them, in a process of its own; its CPU time per event is the floor of Kafka I/O; and the same with
  Faust's own consumer, whose fetches wait up to 1.5 s at the broker (a fetch of only empty partitions is held
  that long: the reader stalls, see :mod:`driftloop.consumer`), for the figures measured against it before;
- **worker, embeddings off / on** (on: every event embedded unless ``--sample-rate``): the real ``driftloop worker``
  process (parse → language → features → per-segment detectors → checkpoints, batched stream counters), read from
  its segment statuses in Redis; and the same run from the moment every segment had calibrated its reference
  (the rate of a worker that has been running a while: calibrating a segment takes about a second and a half of
  CPU, once per reference, and weighs on a short run);
- **a worker group** (``--processes``, default: one per usable core): as many ``driftloop worker`` processes in
  one consumer group, each with a partition of a topic keyed by segment, embeddings off and on, timed from the
  moment every worker has accepted an event (a rebalance for a late joiner is not timed), against consume-only in
  as many processes of one group (the broker and Redis share the same cores): how the service scales on a machine,
  as Faust apps do, by a process per core;
- **every event forwarded** (``--forwarded``): the worker, embeddings off, on a two-partition topic whose every
  event was produced to the partition that is not its segment's, so each goes through the segments topic once
  (produced, consumed, parsed again): the cost of the hop that repartitioning by segment adds for producers that
  do not key by segment; traffic keyed by segment stays where it is and pays none of it;
- **CPU per event by stage**, over the same window: the worker's ``driftloop_stage_cpu_seconds_total{stage}``
  (:mod:`monitor.cpu`: the thread CPU time of each stage's code, scraped from its ``/metrics``) and the whole CPU
  time of the process and its calibration pool (``/proc/PID/stat``); what the stages leave of it is Kafka I/O, Faust
  and the event loop;
- **memory** (after the other rounds): a worker fed ``--segments`` tenants (``--segment-events`` events each,
  none folded): its peak RSS (``VmHWM``) less its RSS after the first batch, per 1,000 segments that became live
  in between (the calibration pool's processes, about 100 MB each, hold no segment and are not counted).

Every path runs ``--repeats`` times, one after the other, and each figure is the median with its range: on a shared
2-core machine a single run moves by ±30%. The ratio of the medians, worker / consume-only, is the figure to watch
(goals: 0.8 with embeddings off, 0.5 with embeddings on every event).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import faust
import redis
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from core import keys
from devtools.embedded import with_services, worker_process
from devtools.traffic import shifted_stream
from driftloop.consumer import App
from driftloop.kafka import ensure_topics, replay, segment_key
from driftloop.repartition import segment_partition
from driftloop.settings import Settings, usable_cpus

console = Console(width=150)


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


@dataclass
class Measured:
    """One run of a path: events/s, the same once calibrated (None: too late to time), CPU seconds per event by
    stage (``process``: the whole process), peak RSS growth per 1,000 live segments in MB."""

    rate: float
    steady: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    rss_per_1000: float | None = None


def consume_only(settings: Settings, events: int, processes: int, stock: bool) -> Measured:
    """Events/s of ``processes`` Faust agents in one consumer group (each in its own process, as workers are) that
    take batches like the worker and discard them (with Faust's own consumer if ``stock``), from the first moment
    each had taken one; their CPU time per event meanwhile."""
    context = multiprocessing.get_context("spawn")
    taken = context.Queue()
    children = [context.Process(target=discard, args=(settings, taken, stock), daemon=True) for _ in range(processes)]
    for child in children:
        child.start()
    try:
        started: set[int] = set()
        total, first = 0, None
        while total < events:
            pid, count = taken.get(timeout=300)
            started.add(pid)
            total += count
            if first is None and len(started) == processes:
                first = (time.perf_counter(), total, sum(proc_cpu(child.pid) for child in children))
        now, cpu = time.perf_counter(), sum(proc_cpu(child.pid) for child in children)
        if first is None:
            raise RuntimeError(f"the {events} events were read before all {processes} consumers had joined: run more")
    finally:
        for child in children:
            child.terminate()
            child.join()
    since, counted, cpu_then = first
    return Measured((total - counted) / (now - since), cpu={"process": (cpu - cpu_then) / (total - counted)})


def consume_run(settings: Settings, workdir: Path, lines: list[str], processes: int, stock: bool) -> Measured:
    """:func:`consume_only` over ``lines``, published to a fresh topic of one partition a process."""
    consume = fresh(settings, workdir, topic_partitions=processes)
    ensure_topics(consume)
    replay(lines, consume)
    return consume_only(consume, len(lines), processes, stock)


def discard(settings: Settings, taken: multiprocessing.Queue, stock: bool) -> None:
    """Run a Faust app with the worker's consumer (:class:`driftloop.consumer.App`; Faust's own if ``stock``) whose
    agent takes the traffic topic in batches like the worker, discards them and puts ``(pid, events)`` of each on
    ``taken``, until the process is terminated."""
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    app = (faust.App if stock else partial(App, fetch_max_wait_s=settings.fetch_max_wait_s))(
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

    @app.agent(topic)
    async def discard_batches(stream: faust.StreamT) -> None:
        async for batch in stream.take(settings.batch_max_events, within=settings.batch_within_s):
            taken.put((os.getpid(), len(batch)))

    async def run() -> None:
        await app.start()
        await asyncio.Event().wait()

    asyncio.run(run())


def rate(since: tuple[float, int], now: float, accepted: int) -> float:
    if accepted == since[1]:
        raise RuntimeError(f"all {accepted} events were accepted at once: too few to time, run more")
    return (accepted - since[1]) / (now - since[0])


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) so far of a process and of those it started that still run, as the worker's
    calibration pool (Linux: ``/proc/PID/stat``)."""
    fields = proc_stat(pid)
    children = [int(path.name) for path in Path("/proc").glob("[0-9]*") if proc_stat(int(path.name))[1:2] == [f"{pid}"]]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") + sum(map(proc_cpu, children))


def proc_stat(pid: int) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command's name (state, parent pid, …); none for a process gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return []


def proc_memory(pid: int, field: str) -> float:
    """A memory figure of ``/proc/PID/status`` (``VmRSS``, ``VmHWM``) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def scraped(port: int, family_name: str, label: str) -> dict[str, float]:
    """The worker's counter ``family_name`` (its ``_total`` samples) by the value of ``label``, from its
    ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        sample.labels[label]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == family_name
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def stage_cpu(port: int) -> dict[str, float]:
    """The worker's ``driftloop_stage_cpu_seconds_total`` by stage."""
    return scraped(port, "driftloop_stage_cpu_seconds", "stage")


def accepted_by(port: int) -> float:
    """Events the worker accepted (``driftloop_events_total{outcome="accepted"}``)."""
    return scraped(port, "driftloop_events", "outcome").get("accepted", 0.0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_now(workers: dict[int, subprocess.Popen]) -> dict[str, float]:
    """CPU seconds so far by stage and of the whole processes (``process``), summed over ``workers`` (metrics port →
    process)."""
    spent: Counter[str] = Counter()
    for port, worker in workers.items():
        spent.update({**stage_cpu(port), "process": proc_cpu(worker.pid)})
    return dict(spent)


def worker_path(settings: Settings, events: int, log: Path, processes: int = 1) -> Measured:
    """The real worker, ``processes`` of them in one group, over ``events`` events: events/s from the first moment
    every worker had accepted an event (one that joined late waited for a rebalance) to the ``events``-th, and from
    the first moment every segment had its reference calibrated; CPU per event by stage over the first of those
    windows, summed over the workers; for one worker, its RSS growth per 1,000 segments over that window."""
    client = redis.Redis.from_url(settings.redis_url)
    client.delete(keys.STREAM_COUNTS, keys.SEGMENT_STATUSES)
    first = calibrated = None
    with contextlib.ExitStack() as stack:
        workers = {
            port: stack.enter_context(worker_process(settings.model_copy(update={"worker_metrics_port": port}), log))
            for port in (free_port() for _ in range(processes))
        }
        pid = next(iter(workers.values())).pid
        while True:
            statuses = [json.loads(raw) for raw in client.hvals(keys.SEGMENT_STATUSES)]
            accepted = sum(status["events"] for status in statuses)  # what GET /v1/stream calls accepted
            now = time.perf_counter()
            if accepted and first is None and all(map(accepted_by, workers)):
                first = (now, accepted)
                cpu, rss, live = cpu_now(workers), proc_memory(pid, "VmRSS"), len(statuses)
            if calibrated is None and statuses and all(status["state"] != "reference" for status in statuses):
                calibrated = (now, accepted)
            if accepted >= events:
                steady = rate(calibrated, now, accepted) if calibrated and accepted - calibrated[1] > 1000 else None
                spent = {stage: seconds - cpu.get(stage, 0.0) for stage, seconds in cpu_now(workers).items()}
                grown = proc_memory(pid, "VmHWM") - rss
                return Measured(
                    rate(first, now, accepted),
                    steady,
                    {stage: seconds / (accepted - first[1]) for stage, seconds in spent.items()},
                    grown / (len(statuses) - live) * 1000 if processes == 1 and len(statuses) > live else None,
                )
            for worker in workers.values():
                if worker.poll() is not None:
                    raise RuntimeError(f"a worker exited with code {worker.returncode}; see {log}")
            time.sleep(0.02)


@dataclass(frozen=True)
class Run:
    """A path of the benchmark: its label, the events published, the settings it changes, how many worker processes
    share it (one per partition of its topic) and whether each event is published outside its segment's partition
    (every one forwarded once) rather than keyed by segment."""

    label: str
    lines: list[str]
    updates: dict[str, object]
    processes: int = 1
    misplaced: bool = False


def worker_run(settings: Settings, workdir: Path, path: Run) -> Measured:
    """:func:`worker_path` over the path's lines, published to a fresh topic of as many partitions as it has worker
    processes (two when misplaced)."""
    partitions = 2 if path.misplaced else path.processes
    run = fresh(settings, workdir, **path.updates, topic_partitions=partitions)
    ensure_topics(run)
    (misplaced if path.misplaced else replay)(path.lines, run)
    return worker_path(run, len(path.lines), workdir / f"{run.app_id}.log", path.processes)


def misplaced(lines: list[str], settings: Settings) -> None:
    """Publish each line to the partition after its segment's, as a producer keying otherwise would: the worker
    forwards every one to its segment's partition (:mod:`driftloop.repartition`)."""
    partitions = settings.topic_partitions
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    try:
        for line in lines:
            segment = segment_key(json.loads(line)).decode()
            partition = (segment_partition(segment, partitions) + 1) % partitions
            producer.send(settings.traffic_topic, value=line.encode(), partition=partition)
        producer.flush()
    finally:
        producer.close()


def tenants(lines: list[str], count: int, per_tenant: int) -> list[str]:
    """``count * per_tenant`` events of ``lines`` spread over ``count`` tenants of one model and route, in turn."""
    spread = []
    for index in range(count * per_tenant):
        event = json.loads(lines[index % len(lines)])
        spread.append(json.dumps({**event, "model": "gpt-4o-mini", "route": "chat", "tenant": f"t{index % count}"}))
    return spread


def spread(values: list[float], scale: float = 1.0, digits: int = 0) -> tuple[str, str]:
    """Median and range of ``values`` times ``scale``, formatted."""
    median = statistics.median(values) * scale
    return f"{median:,.{digits}f}", f"{min(values) * scale:,.{digits}f}–{max(values) * scale:,.{digits}f}"


FORWARDED = "worker, embeddings off, every event forwarded (2 partitions)"
STOCK = "consume-only, Faust's own consumer (fetches wait 1.5 s)"
KEYED = "worker, embeddings off"
STAGES = (
    "parse",
    "language",
    "features",
    "embedding",
    "detectors",
    "calibration",
    "redaction",
    "checkpoint",
    "undo",
    "redis",
)
STAGE_NOTES = {
    "parse": "JSON, validation, fold, position",
    "detectors": "observing, calibration apart",
    "calibration": "once per reference",
    "redaction": "a reference's report prompts",
    "checkpoint": "pickles and table writes",
    "undo": "pickles to undo a failed batch",
    "redis": "statuses (loop CPU meanwhile)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events",
        type=int,
        default=60_000,
        help="events per run without embeddings (long enough for calibration to weigh as it does in a running service)",
    )
    parser.add_argument(
        "--embedded-events",
        type=int,
        default=None,
        help="events of the run with embeddings on (default: --events; 0: no such run)",
    )
    parser.add_argument("--sample-rate", type=float, default=1.0, help="DRIFTLOOP_EMBEDDING_SAMPLE_RATE of that run")
    parser.add_argument(
        "--segments", type=int, default=2000, help="tenants of the memory run (0: no such run), each a live segment"
    )
    parser.add_argument("--segment-events", type=int, default=10, help="events per tenant of the memory run")
    parser.add_argument(
        "--forwarded",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a run whose every event is produced outside its segment's partition, so forwarded once",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=usable_cpus(),
        help="worker processes of the group paths, one per partition (default: one per usable core; 1: no such path)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds of every path, one after the other (a shared machine is noisy)"
    )
    args = parser.parse_args()
    if args.embedded_events is None:
        args.embedded_events = args.events
    lines = [json.dumps(event) for event in shifted_stream(args.events, None, seed=3)]
    workdir = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    off, on = {"embeddings": False}, {"embeddings": True, "embedding_sample_rate": args.sample_rate}
    embedded = f"embeddings on ({args.sample_rate:.0%} embedded)"
    runs = [Run(KEYED, lines, off)]
    if args.forwarded:
        runs.append(Run(FORWARDED, lines, off, misplaced=True))
    if args.embedded_events:
        runs.append(Run(f"worker, {embedded}", lines[: args.embedded_events], on))
    if args.processes > 1:
        group = f"{args.processes} workers in a group"
        runs.append(Run(f"{group}, embeddings off", lines, off, args.processes))
        if args.embedded_events:
            runs.append(Run(f"{group}, {embedded}", lines[: args.embedded_events], on, args.processes))
    memory_runs = []  # after every round of the others: their thousands of checkpoints load the broker
    if args.segments:
        memory_lines = tenants(lines, args.segments, args.segment_events)
        memory_runs.append(Run(f"worker, {args.segments:,} tenants", memory_lines, {"segment_max_tenants": 0}))
    consume_label = "consume-only (Faust/aiokafka, discard)"
    consumers = {consume_label: 1}
    if args.processes > 1:
        consumers[f"consume-only, {args.processes} processes in a group"] = args.processes
    measured: dict[str, list[Measured]] = {}
    paths = runs + memory_runs
    sizes = dict.fromkeys([*consumers, STOCK], len(lines)) | {path.label: len(path.lines) for path in paths}
    processes = consumers | {STOCK: 1} | {path.label: path.processes for path in paths}
    with with_services(Settings(_env_file=None, kafka_bootstrap=None, redis_url=None), workdir) as settings:
        for round_ in range(1, args.repeats + 1):
            for label, count in [*consumers.items(), (STOCK, 1)]:
                with console.status(f"round {round_}/{args.repeats}: {label}"):
                    measured.setdefault(label, []).append(consume_run(settings, workdir, lines, count, label == STOCK))
            for path in runs:
                with console.status(f"round {round_}/{args.repeats}: {path.label}"):
                    measured.setdefault(path.label, []).append(worker_run(settings, workdir, path))
        for round_ in range(1, args.repeats + 1):
            for path in memory_runs:
                with console.status(f"round {round_}/{args.repeats}: {path.label}"):
                    measured.setdefault(path.label, []).append(worker_run(settings, workdir, path))
    saved = workdir / "measured.json"
    saved.write_text(json.dumps({label: [asdict(m) for m in runs] for label, runs in measured.items()}, indent=1))
    console.print(f"measurements: {saved}")
    print_rates(measured, sizes, processes, consumers, args.repeats)
    print_stages(measured, consumers)


def ratios(values: list[float], bases: tuple[float, ...]) -> list[str]:
    """The median of ``values`` over each base, as table cells."""
    return [f"{statistics.median(values) / base:.2f}" for base in bases]


def print_rates(
    measured: dict[str, list[Measured]],
    sizes: dict[str, int],
    processes: dict[str, int],
    consumers: dict[str, int],
    repeats: int,
) -> None:
    """Each path's events/s against consume-only in one process and against consume-only in as many processes (the
    ratio of their medians)."""
    baselines = {count: statistics.median(m.rate for m in measured[label]) for label, count in consumers.items()}
    table = Table(title=f"stream worker throughput (one partition a process; median and range of {repeats} rounds)")
    columns = ("path", "events", "events/s", "range", "× consume-only", "× as many consumers", "CPU µs/event")
    for column in (*columns, "RSS MB/1,000 seg."):
        table.add_column(column, justify="left" if column == "path" else "right")
    for label, runs in measured.items():
        rates = [m.rate for m in runs]
        cpu = spread([m.cpu["process"] for m in runs], 1e6)[0]
        rss = [m.rss_per_1000 for m in runs if m.rss_per_1000 is not None]
        memory = "{} ({})".format(*spread(rss)) if rss and "tenants" in label else ""
        bases = (baselines[1], baselines[processes[label]])
        table.add_row(label, f"{sizes[label]:,}", *spread(rates), *ratios(rates, bases), cpu, memory)
        steady = [m.steady for m in runs if m.steady is not None]
        if steady:
            table.add_row("  the same, once its segments are calibrated", "", *spread(steady), *ratios(steady, bases))
    console.print(table)
    if FORWARDED in measured:
        keyed, forwarded = (statistics.median(m.rate for m in measured[label]) for label in (KEYED, FORWARDED))
        keyed_cpu, forwarded_cpu = (
            statistics.median(m.cpu["process"] for m in measured[label]) for label in (KEYED, FORWARDED)
        )
        console.print(
            f"the hop: every event forwarded / keyed by segment = {forwarded / keyed:.2f}x the events/s, "
            f"{(forwarded_cpu - keyed_cpu) * 1e6:+.0f} µs of CPU an event"
        )


def print_stages(measured: dict[str, list[Measured]], consumers: dict[str, int]) -> None:
    """CPU per event by stage of each worker path (summed over a group's processes), beside consume-only's."""
    paths = [label for label in measured if label not in {*consumers, STOCK} and "tenants" not in label]
    consume_label = next(iter(consumers))
    table = Table(title="CPU time per event by stage, µs (median, range); thread CPU time of each stage's code")
    table.add_column("stage")
    for label in paths:
        table.add_column(label, justify="right")
    for stage in STAGES:
        cells = [" ".join(spread([m.cpu.get(stage, 0.0) for m in measured[label]], 1e6)) for label in paths]
        table.add_row(f"{stage} ({STAGE_NOTES[stage]})" if stage in STAGE_NOTES else stage, *cells)
    rest = [
        " ".join(spread([m.cpu["process"] - sum(m.cpu.get(s, 0.0) for s in STAGES) for m in measured[label]], 1e6))
        for label in paths
    ]
    table.add_row("Kafka I/O, Faust, event loop (the rest)", *rest)
    floor = " ".join(spread([m.cpu["process"] for m in measured[consume_label]], 1e6))
    table.add_row("  consume-only process, for comparison", *[floor] * len(paths))
    table.add_row(
        "whole worker process", *[" ".join(spread([m.cpu["process"] for m in measured[label]], 1e6)) for label in paths]
    )
    console.print(table)


if __name__ == "__main__":
    main()
