"""What a candidate model is verified on, and the run of it against production and the candidate side by side.

One suite, its probes in families: ``incident`` (the incident's evidence prompts that a robust model does not
simply answer, and probes its recipe's rule generators build around the evidence with a seed of their own),
``heldout`` (the version's held-out split), ``stress:<family>`` (the segment's probes of the configured stress
suite) and ``general`` (ordinary requests that must still be answered). Both models get the same probes, scored by
the stress scorers; the comparison is :func:`validation.verdict.verdict`.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow.parquet as pq

from feedback.datasets import heldout_rows
from feedback.exports import HELDOUT_FILE
from feedback.manifest import DatasetManifest
from feedback.storage import DatasetStore
from generators.llm_client import Endpoint, LLMClient
from generators.recipes import Recipe, run_recipe
from generators.references import expected_for
from generators.samples import Expected
from monitor.incidents import DriftIncident
from validation.run import StressConfig, stress_run
from validation.suite import Probe, Suite
from validation.verdict import (
    GENERAL,
    HELDOUT,
    INCIDENT,
    MAX_ERROR_SHARE,
    STRESS,
    Verdict,
    general_prompts,
    verdict,
)

SEED = "verify"
"""Seed of the incident's generated probes: not the dataset's, so they are not its training rows."""


@dataclass(frozen=True)
class Sizes:
    probes: int = 24
    """Probes per family: incident, held-out, each stress family."""
    general: int = 8


def heldout_probes(manifest: DatasetManifest) -> tuple[list[dict], str | None]:
    """The version's held-out split (:func:`feedback.datasets.heldout_rows`) as ``{"prompt", "expected",
    "technique", "canary"}``, and a note when the version has none (written before held-out splits existed: its
    own rows stand in, though the candidate was trained on them)."""
    if rows := heldout_rows(manifest):
        return [_probe_fields(row) for row in rows], None
    table = pq.read_table(io.BytesIO(DatasetStore.of(manifest).read(manifest.id, "samples.parquet", manifest)))
    rows = table.select(["prompt", "expected", "technique", "metadata"]).to_pylist()
    return [_probe_fields(row) for row in rows], f"dataset {manifest.id} has no {HELDOUT_FILE}: its rows stood in"


def _probe_fields(row: dict) -> dict:
    """A sample's row (``metadata`` an object, or JSON text in ``samples.parquet``) as a probe's fields."""
    metadata = row.get("metadata") or {}
    metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
    return {"prompt": row["prompt"], "expected": row["expected"], "technique": row["technique"],
            "canary": metadata.get("canary")}  # fmt: skip


def verification_suite(
    incident: DriftIncident, recipe: Recipe, heldout: list[dict], stress: Suite | None, sizes: Sizes
) -> Suite:
    """The probes both models get (see the module docstring); deterministic for the same input."""
    pick = random.Random(f"{incident.id}:{SEED}")
    probes = _incident_probes(incident, recipe, sizes.probes)
    rows = sorted(heldout, key=lambda r: r["prompt"])
    for i, row in enumerate(pick.sample(rows, min(sizes.probes, len(rows)))):
        probes.append(_probe(f"heldout-{i}", HELDOUT, incident.segment, row["prompt"], row["expected"], row["canary"]))
    for family, members in _stress_families(stress, incident.segment).items():
        chosen = pick.sample(members, min(sizes.probes, len(members)))
        probes += [p.model_copy(update={"family": STRESS + family, "group": None}) for p in chosen]
    for i, prompt in enumerate(general_prompts()[: sizes.general]):
        probes.append(_probe(f"general-{i}", GENERAL, incident.segment, prompt, Expected.ANSWER))
    return Suite(name=f"verify-{incident.id}", probes=probes)


def _incident_probes(incident: DriftIncident, recipe: Recipe, count: int) -> list[Probe]:
    """The evidence prompts a robust model does not simply answer (the attacks of an attack wave: the failure
    itself; at most half), then the recipe's probes around the evidence. Plain traffic of the window would only
    dilute the failure rate."""
    failing = [(e.prompt, expected) for e in incident.evidence if (expected := expected_for(e)) != Expected.ANSWER]
    probes = [
        _probe(f"evidence-{i}", INCIDENT, incident.segment, prompt, expected)
        for i, (prompt, expected) in enumerate(failing[: count // 2])
    ]
    generated = run_recipe(incident, recipe, count - len(probes), seed=SEED).samples
    probes += [
        _probe(s.id, INCIDENT, incident.segment, s.prompt, s.expected, s.metadata.get("canary"))
        for s in generated[: count - len(probes)]
    ]
    return probes


def _stress_families(stress: Suite | None, segment: str) -> dict[str, list[Probe]]:
    """The stress suite's probes of ``segment`` by family (all of them when none is of that segment)."""
    if stress is None:
        return {}
    mine = [p for p in stress.probes if p.segment == segment] or stress.probes
    families: dict[str, list[Probe]] = {}
    for probe in mine:
        families.setdefault(probe.family, []).append(probe)
    return families


def _probe(probe_id: str, family: str, segment: str, prompt: str, expected: str, canary: str | None = None) -> Probe:
    return Probe(
        id=probe_id, family=family, generator="verification", segment=segment, prompt=prompt,
        expected=Expected(expected), canary=canary,
    )  # fmt: skip


@dataclass(frozen=True)
class Side:
    """One model of the comparison: where it is and how it is asked."""

    endpoint: Endpoint
    config: StressConfig


async def run_side_by_side(suite: Suite, production: Side, candidate: Side, notes: Iterable[str] = ()) -> Verdict:
    """Send ``suite`` to both models at once and compare the scored runs."""

    async def run(side: Side):
        async with LLMClient(side.endpoint) as client:
            return await stress_run(suite, client, side.config)

    before, after = await asyncio.gather(run(production), run(candidate))
    if before.summary.errors > MAX_ERROR_SHARE * before.summary.probes:
        raise ProductionUnanswered(before.summary.errors, before.summary.probes)
    return verdict(before.summary, after.summary, list(notes))


class ProductionUnanswered(RuntimeError):
    """The production model left too many probes unanswered to compare with: the verification is retried."""

    def __init__(self, errors: int, probes: int) -> None:
        self.errors, self.probes = errors, probes
        super().__init__(f"the production model left {errors} of {probes} probes unanswered")
