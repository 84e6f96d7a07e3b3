"""generators: incident in, candidate samples out."""

from generators.adversarial import FAMILIES, AdversarialGenerator
from generators.perturbations import PerturbationGenerator
from generators.quality import QualityReport, assess
from generators.recipes import GENERATORS, RECIPES, Generated, Recipe, run_recipe
from generators.samples import Expected, Generator, Sample

__all__ = [
    "FAMILIES",
    "GENERATORS",
    "RECIPES",
    "AdversarialGenerator",
    "Expected",
    "Generated",
    "Generator",
    "PerturbationGenerator",
    "QualityReport",
    "Recipe",
    "Sample",
    "assess",
    "run_recipe",
]
