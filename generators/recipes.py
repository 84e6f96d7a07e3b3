"""Recipes: which generators answer which kind of incident, and in what proportion.

>>> RECIPES["attack-wave"].counts(100)
{'adversarial': 60, 'perturbation': 40}
"""

from __future__ import annotations

from dataclasses import dataclass

from generators.adversarial import AdversarialGenerator
from generators.perturbations import PerturbationGenerator
from generators.samples import Generator, Sample
from monitor.incidents import DriftIncident

GENERATORS: dict[str, Generator] = {g.name: g for g in (PerturbationGenerator(), AdversarialGenerator())}


@dataclass(frozen=True)
class Recipe:
    name: str
    mix: dict[str, float]
    """Generator name -> share of the samples."""

    def counts(self, total: int) -> dict[str, int]:
        """Samples per generator for ``total`` samples (rounding goes to the first generator)."""
        counts = {name: int(total * share) for name, share in self.mix.items()}
        first = next(iter(counts))
        counts[first] += total - sum(counts.values())
        return counts


RECIPES: dict[str, Recipe] = {
    "attack-wave": Recipe("attack-hardening", {"adversarial": 0.6, "perturbation": 0.4}),
    "quality-drop": Recipe("quality-recovery", {"perturbation": 0.7, "adversarial": 0.3}),
    "latency-drift": Recipe("length-extremes", {"perturbation": 1.0}),
    "input-shift": Recipe("edge-cases", {"perturbation": 0.8, "adversarial": 0.2}),
}


@dataclass(frozen=True)
class Generated:
    samples: list[Sample]
    rejected: dict[str, int]
    generator_versions: dict[str, str]


def run_recipe(incident: DriftIncident, recipe: Recipe, total: int, seed: str) -> Generated:
    """Samples for ``incident`` in a deterministic order, exact duplicates dropped and counted."""
    samples: dict[str, Sample] = {}
    rejected = {"duplicate": 0}
    for name, count in recipe.counts(total).items():
        for sample in GENERATORS[name].generate(incident, count, seed):
            if sample.id in samples:
                rejected["duplicate"] += 1
            else:
                samples[sample.id] = sample
    versions = {name: GENERATORS[name].version for name in recipe.mix}
    return Generated(samples=list(samples.values()), rejected=rejected, generator_versions=versions)
