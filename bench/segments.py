"""Memory and events/s of the stream step while 100,000 distinct tenants arrive, with and without the segment cap.

Run with ``make bench-segments`` (``python -m bench.segments [--tenants N] [--before N]``). Each configuration runs
in a process of its own (so its RSS is its own) and feeds one event per tenant, in batches of the worker's
size, through :class:`monitor.stream.StreamStep` as the worker's agent does (fold, admit, observe, checkpoint the
segments changed, evict), with dicts as checkpoint stores:

- **no cap**: every segment stays live and none folds (``max_live_segments`` above the tenant count);
- **cap**: at most ``--cap`` segments live (default 5,000, the setting's default), none folded;
- **cap + fold**: the defaults: also at most 1,000 tenants per model, the rest monitored in ``m/default/_overflow``
  (which then collects a reference and calibrates: seconds of CPU, once);
- **before** (``--before`` tenants, default 20,000; 0 skips it): no cap, and each new segment scans every live one
  for a settled one, as the step did before (``any(known.detectors for known in monitors.values())``), the
  reason throughput fell as tenants piled up; a shorter run, the scan is quadratic.

Features are measured once for a pool of prompts and reused (they cost the same whatever the tenant; their cost is
``bench.throughput``'s subject), so the figures are the step's own. Printed per configuration: events/s over the
first and the last 10,000 events and last/first, RSS growth while feeding and per tenant, checkpoint bytes
held in the stores, live segments at the end, evictions and folded events; then the cap's RSS against no cap.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import time
from dataclasses import dataclass
from types import MethodType

import numpy as np
from rich.console import Console
from rich.table import Table

from core.redact import redact
from devtools.traffic import sharegpt_pairs
from driftloop.settings import Settings
from monitor.events import TrafficEvent
from monitor.stream import StreamStep

console = Console(width=140)
WINDOW = 10_000
"""Events per throughput window: the first and the last are compared."""
POOL = 1000
"""Real exchanges (ShareGPT) whose features are measured once; each event is one of them drawn at random, so every
segment's traffic is stationary (the overflow segment settles and stays quiet)."""


def rss_mb() -> float:
    """The process's resident memory now, in MB (Linux: ``/proc/self/statm``)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass(frozen=True)
class Config:
    """One run: how many tenants, the settings changed, and whether new segments scan every live one (before)."""

    tenants: int
    settings: dict[str, int]
    scan: bool = False


def run(config: Config) -> dict[str, float]:
    """Feed ``config.tenants`` tenants through a fresh step with ``config.settings``; its figures."""
    settings = Settings.model_construct(**config.settings)
    monitor_store: dict[bytes, bytes] = {}
    step = StreamStep(settings, monitor_store, {})
    if config.scan:
        step._established = MethodType(lambda self: any(m.detectors for m in self.monitors.values()), step)
    pool = sharegpt_pairs(POOL)
    exchanges = [TrafficEvent(id=f"p{i}", model="m", prompt=p, response=r) for i, (p, r) in enumerate(pool)]
    rows = step.features(exchanges)
    tenants, batch = config.tenants, settings.batch_max_events
    drawn = np.random.default_rng(0).integers(0, len(pool), tenants)
    redact(pool[0][0])  # loads the personal-data model a settled segment's first checkpoint uses: not segment memory
    rss_before = rss_mb()
    marks: list[tuple[int, float]] = [(0, time.perf_counter())]
    for start in range(0, tenants, batch):
        events = [
            step.fold(exchanges[drawn[i]].model_copy(update={"id": f"e{i}", "tenant": f"t{i:06d}"}))
            for i in range(start, min(start + batch, tenants))
        ]
        admitted = [(i, e) for i, e in enumerate(events, start) if step.admit(e, 0, i)]
        outcomes = step.observe([e for _, e in admitted], [dict(rows[drawn[i]]) for i, _ in admitted])
        step.checkpoint()
        for segment in outcomes.segments:
            step.status(segment)
        step.evict()
        done = start + len(events)
        if done // WINDOW > marks[-1][0] // WINDOW or done == tenants:
            marks.append((done, time.perf_counter()))
    rss_after = rss_mb()
    rates = [(n1 - n0) / (t1 - t0) for (n0, t0), (n1, t1) in itertools.pairwise(marks)]
    registry = step.metrics.registry
    return {
        "first": rates[0],
        "last": rates[-1],
        "rss_mb": rss_after - rss_before,
        "store_mb": sum(map(len, monitor_store.values())) / 2**20,
        "live": len(step.monitors),
        "evicted": registry.get_sample_value("driftloop_segments_evicted_total") or 0,
        "folded": registry.get_sample_value("driftloop_events_folded_total", {"dimension": "tenant"}) or 0,
        "seconds": marks[-1][1] - marks[0][1],
    }


def configurations(tenants: int, cap: int, before: int) -> dict[str, Config]:
    """The configurations to compare, by name (see the module docstring)."""
    unbounded = {"max_live_segments": max(tenants, before) + 1, "segment_max_tenants": 0, "segment_max_routes": 0}
    found = {
        "no cap": Config(tenants, unbounded),
        "cap": Config(tenants, {**unbounded, "max_live_segments": cap}),
        "cap + fold": Config(tenants, {"max_live_segments": cap}),
    }
    if before:
        found["before"] = Config(before, unbounded, scan=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100_000, help="distinct tenants, one event each")
    parser.add_argument("--cap", type=int, default=5000, help="max_live_segments of the capped runs")
    parser.add_argument("--before", type=int, default=20_000, help="tenants of the run as before (0: skip it)")
    args = parser.parse_args()
    configs = configurations(args.tenants, args.cap, args.before)
    results = {}
    spawn = multiprocessing.get_context("spawn")
    for name, config in configs.items():
        with console.status(f"{name}: {config.tenants:,} tenants"), spawn.Pool(1) as pool:
            results[name] = pool.apply(run, (config,))
    table = Table(title=f"StreamStep, one event per tenant (windows of {WINDOW:,} events; cap {args.cap:,})")
    for column in ("configuration", "tenants", "first ev/s", "last ev/s", "last/first", "RSS +MB", "KB/tenant",
                   "checkpoints MB", "live", "evicted", "folded", "s"):  # fmt: skip
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for name, r in results.items():
        tenants = configs[name].tenants
        table.add_row(
            name,
            f"{tenants:,}",
            f"{r['first']:,.0f}",
            f"{r['last']:,.0f}",
            f"{r['last'] / r['first']:.2f}",
            f"{r['rss_mb']:,.0f}",
            f"{r['rss_mb'] * 1024 / tenants:.2f}",
            f"{r['store_mb']:,.1f}",
            f"{r['live']:,.0f}",
            f"{r['evicted']:,.0f}",
            f"{r['folded']:,.0f}",
            f"{r['seconds']:.0f}",
        )
    console.print(table)
    unbounded = results["no cap"]
    for name in ("cap", "cap + fold"):
        r = results[name]
        console.print(
            f"{name} / no cap: RSS growth {r['rss_mb'] / unbounded['rss_mb']:.2f}, "
            f"last-window events/s {r['last'] / unbounded['last']:.2f}"
        )


if __name__ == "__main__":
    main()
