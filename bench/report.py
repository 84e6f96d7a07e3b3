"""CPU and wall time of an incident's Evidently report (:func:`monitor.reports.build_report`) beside a busy core, as
the worker builds it next to its stream, against the same build with the native thread pools left at their
defaults (the build before they were held to one thread), in the same run.

Run with ``make bench-report`` (``python -m bench.report [--rows N ...] [--repeats R]``). Windows are real
ShareGPT prompts with their features (reference: the first ``N`` pairs, current: the next ``N``), embedded by the
monitor's encoder. A second process spins on one core for the whole run (the stream's share of a 2-core machine).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import statistics
import time
from collections.abc import Iterator
from unittest import mock

from rich.console import Console
from rich.table import Table

from bench.generation import sharegpt_incident
from devtools.traffic import sharegpt_pairs
from driftloop.settings import Settings
from monitor.events import TrafficEvent
from monitor.features import extract_features
from monitor.reports import build_report

console = Console(width=140)


def _spin(stop: multiprocessing.synchronize.Event) -> None:
    while not stop.is_set():
        sum(range(10_000))


@contextlib.contextmanager
def busy_core() -> Iterator[None]:
    """A process that keeps one core busy while the block runs."""
    stop = multiprocessing.Event()
    process = multiprocessing.Process(target=_spin, args=(stop,), daemon=True)
    process.start()
    try:
        yield
    finally:
        stop.set()
        process.join(timeout=5)


def rows(pairs: list[tuple[str, str]]) -> list[dict[str, float | str]]:
    """Report rows of ShareGPT pairs: each event's features and its prompt."""
    events = [
        TrafficEvent(id=str(i), model="m", prompt=prompt, response=response, latency_ms=900.0, finish_reason="stop")
        for i, (prompt, response) in enumerate(pairs)
    ]
    return [{**extract_features(event), "prompt": event.prompt_text} for event in events]


def timed(build: contextlib.AbstractContextManager, *args: object) -> tuple[float, float]:
    """CPU (this process) and wall seconds of one build under ``build``."""
    with build:
        cpu, wall = time.process_time(), time.perf_counter()
        build_report(*args)
        return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100, 500], help="rows of each window")
    parser.add_argument("--repeats", type=int, default=3, help="builds of each kind, taking turns")
    args = parser.parse_args()
    model = Settings.model_construct().embedding_model
    pairs = list(sharegpt_pairs(limit=2 * max(args.rows)))
    incident = sharegpt_incident()
    kinds = {
        "threads held to one (now)": contextlib.nullcontext(),
        "native pools at their defaults (before)": mock.patch("monitor.reports.threadpool_limits"),
    }
    table = Table(title=f"Evidently report of an incident beside a busy core ({model} encoder; median (range))")
    for column in ("rows a window", "build", "CPU s", "wall s", "CPU ratio to now"):
        table.add_column(column, justify="left" if column in ("build",) else "right")
    with busy_core():
        build_report(incident, rows(pairs[:20]), rows(pairs[20:40]), model)  # imports, models loaded
        for n in args.rows:
            windows = rows(pairs[:n]), rows(pairs[n : 2 * n])
            times: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
            for _ in range(args.repeats):
                for kind, build in kinds.items():
                    times[kind].append(timed(build, incident, *windows, model))
            now = statistics.median(cpu for cpu, _ in times["threads held to one (now)"])
            for kind, measured in times.items():
                cpus, walls = [cpu for cpu, _ in measured], [wall for _, wall in measured]
                table.add_row(
                    f"{n:,}",
                    kind,
                    f"{statistics.median(cpus):.1f} ({min(cpus):.1f}–{max(cpus):.1f})",
                    f"{statistics.median(walls):.1f} ({min(walls):.1f}–{max(walls):.1f})",
                    f"{statistics.median(cpus) / now:.2f}×",
                )
            table.add_section()
    console.print(table)


if __name__ == "__main__":
    main()
