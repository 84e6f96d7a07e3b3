"""Recipes: which generators answer which kind of incident, and in what proportion, read from a YAML file a
user can edit (``generators/recipes.yaml``; ``DRIFTLOOP_RECIPES_PATH`` points at another).

>>> book = load_recipes()
>>> book.for_kind("attack-wave").name, book.for_kind("attack-wave").counts(100)
('attack-hardening', {'adversarial': 60, 'perturbation': 30, 'ambiguity': 10})
>>> book.for_kind("a-kind-nobody-mapped").name == book.default
True
>>> book.for_kind("latency-drift") is None  # on-call only: training data does not make a model serve faster
True
>>> book.named("nope")
Traceback (most recent call last):
...
generators.recipes.UnknownRecipe: no recipe nope; known: attack-hardening, debiasing, edge-cases, language-robustness, \
length-extremes, privacy-rewrite, quality-recovery, robustness-hardening, topic-coverage
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError, model_validator

from core.errors import Misconfigured, Unprocessable
from generators.registry import GENERATOR_FAMILIES, GENERATORS
from generators.samples import Generator, Sample
from monitor.incidents import DriftIncident

log = logging.getLogger(__name__)

DEFAULT_PATH = files("generators") / "recipes.yaml"


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    mix: dict[str, PositiveFloat] = Field(min_length=1, description="generator -> relative weight")

    def counts(self, total: int, available: Mapping[str, object] | None = None) -> dict[str, int]:
        """Samples per generator for ``total`` samples, over the ``available`` ones (default: all of the mix),
        by largest remainder so they add up to ``total``."""
        mix = {name: weight for name, weight in self.mix.items() if available is None or name in available}
        if not mix:
            raise ValueError(f"recipe {self.name}: none of its generators ({', '.join(self.mix)}) is available")
        weight = sum(mix.values())
        exact = {name: total * share / weight for name, share in mix.items()}
        counts = {name: int(value) for name, value in exact.items()}
        by_remainder = sorted(mix, key=lambda name: counts[name] - exact[name])  # stable: ties keep mix order
        for name in by_remainder[: total - sum(counts.values())]:
            counts[name] += 1
        return counts


class UnknownRecipe(Unprocessable, LookupError):
    """No recipe of that name; carries the known names."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no recipe {name}; known: {', '.join(known)}")
        self.name, self.known = name, known


class RecipeBook(BaseModel):
    """The recipes and which incident kind gets which."""

    model_config = ConfigDict(extra="forbid")

    default: str = Field(description="recipe of the incident kinds not listed in kinds")
    kinds: dict[str, str | None] = Field(
        default_factory=dict, description="incident kind -> recipe name; None: on-call only, no dataset"
    )
    recipes: dict[str, Recipe] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _name_recipes(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("recipes"), dict):
            recipes = data["recipes"]
            data = {**data, "recipes": {k: {"name": k, **v} if isinstance(v, dict) else v for k, v in recipes.items()}}
        return data

    @model_validator(mode="after")
    def _check_names(self) -> RecipeBook:
        known = sorted(self.recipes)
        for where, name in [("default", self.default), *((f"kinds.{k}", v) for k, v in self.kinds.items())]:
            if name is not None and name not in self.recipes:
                raise ValueError(f"{where} names recipe {name!r}, which is not defined; recipes: {', '.join(known)}")
        generators = sorted(GENERATOR_FAMILIES)
        for recipe in self.recipes.values():
            unknown = sorted(set(recipe.mix) - set(generators))
            if unknown:
                raise ValueError(
                    f"recipe {recipe.name} uses unknown generators {', '.join(unknown)}; known: {', '.join(generators)}"
                )
        return self

    def named(self, name: str) -> Recipe:
        """The recipe ``name``; :class:`UnknownRecipe` when there is none."""
        if name not in self.recipes:
            raise UnknownRecipe(name, sorted(self.recipes))
        return self.recipes[name]

    def for_kind(self, kind: str) -> Recipe | None:
        """The recipe for incidents (causes) of ``kind``: None when the book maps it to none (on-call only); the
        default one (logged) for a kind the book does not list."""
        if kind not in self.kinds:
            log.info("no recipe for incident kind %s: using the default recipe %s", kind, self.default)
            return self.recipes[self.default]
        name = self.kinds[kind]
        return None if name is None else self.recipes[name]

    def for_incident(self, incident: DriftIncident) -> list[Recipe]:
        """One recipe per cause of ``incident`` that has one (each once, the most urgent cause's first); an incident
        that names no cause (stored before causes existed, or a manual one) takes its kind's."""
        kinds = [cause.kind for cause in incident.causes] or [incident.kind]
        recipes = [recipe for kind in kinds if (recipe := self.for_kind(kind)) is not None]
        return list({recipe.name: recipe for recipe in recipes}.values())


class RecipeError(Misconfigured, ValueError):
    """A recipes file that cannot be read or is not valid; the message says where and why."""


def load_recipes(path: Path | str | None = None) -> RecipeBook:
    """The recipe book in ``path`` (default: the packaged ``recipes.yaml``), validated."""
    source = DEFAULT_PATH if path is None else Path(path)
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as error:
        raise RecipeError(f"cannot read recipes file {source}: {error}") from error
    except yaml.YAMLError as error:
        raise RecipeError(f"recipes file {source} is not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise RecipeError(f"recipes file {source} must be a mapping with default, kinds and recipes")
    try:
        return RecipeBook.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        )
        raise RecipeError(f"recipes file {source} is invalid: {problems}") from error


@dataclass(frozen=True)
class Generated:
    samples: list[Sample]
    rejected: dict[str, int]
    generator_versions: dict[str, str]
    skipped: dict[str, str] = field(default_factory=dict)
    """Generators of the recipe that were not available, with why; their share went to the others."""


def run_recipe(
    incident: DriftIncident,
    recipe: Recipe,
    total: int,
    seed: str,
    extra: Mapping[str, Generator] | None = None,
) -> Generated:
    """Samples for ``incident`` in a deterministic order, exact duplicates dropped and counted.

    ``extra`` adds generators that exist only in some deployments (``{"llm": generator}``); a recipe generator
    that is neither built in nor passed is skipped, with the reason in ``Generated.skipped``. What a generator
    drops (its batch's ``rejected``) is added to ``Generated.rejected``.
    """
    if not incident.evidence:
        raise ValueError(f"incident {incident.id} has no evidence to generate from")
    generators = {**GENERATORS, **(extra or {})}
    skipped = {name: _absence(name) for name in recipe.mix if name not in generators}
    for name, reason in skipped.items():
        log.warning("recipe %s: skipping generator %s: %s", recipe.name, name, reason)
    samples: dict[str, Sample] = {}
    rejected = {"duplicate": 0}
    counts = recipe.counts(total, generators)
    for name, count in counts.items():
        batch = generators[name].generate(incident, count, seed)
        for sample in batch.samples:
            if sample.id in samples:
                rejected["duplicate"] += 1
            else:
                samples[sample.id] = sample
        for reason, dropped in batch.rejected.items():
            rejected[reason] = rejected.get(reason, 0) + dropped
    versions = {name: generators[name].version for name in counts}
    return Generated(samples=list(samples.values()), rejected=rejected, generator_versions=versions, skipped=skipped)


def _absence(name: str) -> str:
    """Why the generator ``name`` is missing from this process."""
    family = GENERATOR_FAMILIES.get(name)
    return family.absent if family is not None and family.absent else "not available in this process"
