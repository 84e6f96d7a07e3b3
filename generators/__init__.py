"""generators: incident in, candidate samples out."""

from generators.adversarial import FAMILIES, AdversarialGenerator, decode
from generators.ambiguity import AmbiguityGenerator
from generators.counterfactual import CounterfactualGenerator, RepresentationAudit, representation_audit
from generators.perturbations import PerturbationGenerator
from generators.privacy import PrivacyGenerator
from generators.quality import QualityReport, assess
from generators.recipes import (
    GENERATORS,
    Generated,
    Recipe,
    RecipeBook,
    RecipeError,
    UnknownRecipe,
    load_recipes,
    run_recipe,
)
from generators.samples import Expected, Generator, Sample

__all__ = [
    "FAMILIES",
    "GENERATORS",
    "AdversarialGenerator",
    "AmbiguityGenerator",
    "CounterfactualGenerator",
    "Expected",
    "Generated",
    "Generator",
    "PerturbationGenerator",
    "PrivacyGenerator",
    "QualityReport",
    "Recipe",
    "RecipeBook",
    "RecipeError",
    "RepresentationAudit",
    "Sample",
    "UnknownRecipe",
    "assess",
    "decode",
    "load_recipes",
    "representation_audit",
    "run_recipe",
]
