"""generators: incident in, candidate samples out."""

from generators.adversarial import FAMILIES, AdversarialGenerator, decode
from generators.ambiguity import AmbiguityGenerator
from generators.counterfactual import CounterfactualGenerator, RepresentationAudit, representation_audit
from generators.perturbations import PerturbationGenerator
from generators.privacy import PrivacyGenerator
from generators.quality import QualityReport, assess
from generators.recipes import (
    Generated,
    Recipe,
    RecipeBook,
    RecipeError,
    UnknownRecipe,
    load_recipes,
    run_recipe,
)
from generators.registry import GENERATOR_FAMILIES, GENERATORS, TECHNIQUES, GeneratorFamily
from generators.samples import Batch, Expected, Generator, RuleGenerator, Sample

__all__ = [
    "FAMILIES",
    "GENERATORS",
    "GENERATOR_FAMILIES",
    "TECHNIQUES",
    "AdversarialGenerator",
    "AmbiguityGenerator",
    "Batch",
    "CounterfactualGenerator",
    "Expected",
    "Generated",
    "Generator",
    "GeneratorFamily",
    "PerturbationGenerator",
    "PrivacyGenerator",
    "QualityReport",
    "Recipe",
    "RecipeBook",
    "RecipeError",
    "RepresentationAudit",
    "RuleGenerator",
    "Sample",
    "UnknownRecipe",
    "assess",
    "decode",
    "load_recipes",
    "representation_audit",
    "run_recipe",
]
