"""The generator families, each registered once, by its generator class (its ``name``, ``version`` and
``techniques`` are class attributes; ``generate`` returns a :class:`~generators.samples.Batch`).

To add a family: write its module, then add one :class:`GeneratorFamily` line to :data:`GENERATOR_FAMILIES`;
recipes may then name it.

>>> {"perturbation", "adversarial", "llm"} <= set(GENERATOR_FAMILIES), "llm" in GENERATORS
(True, False)
>>> GENERATOR_FAMILIES["llm"].absent
'no LLM endpoint is configured (DRIFTLOOP_LLM_BASE_URL is unset)'
"""

from __future__ import annotations

from dataclasses import dataclass

from generators.adversarial import AdversarialGenerator
from generators.ambiguity import AmbiguityGenerator
from generators.counterfactual import CounterfactualGenerator
from generators.llm import LLMGenerator
from generators.perturbations import PerturbationGenerator
from generators.privacy import PrivacyGenerator
from generators.samples import Generator


@dataclass(frozen=True)
class GeneratorFamily:
    generator: type[Generator]
    absent: str | None = None
    """Why a process may lack the family: its generator needs configuration, so a deployment builds it and passes
    it in (``run_recipe(..., extra=...)``). None: every process builds it, without arguments."""

    @property
    def name(self) -> str:
        return self.generator.name


GENERATOR_FAMILIES: dict[str, GeneratorFamily] = {
    family.name: family
    for family in (
        GeneratorFamily(PerturbationGenerator),
        GeneratorFamily(AdversarialGenerator),
        GeneratorFamily(AmbiguityGenerator),
        GeneratorFamily(CounterfactualGenerator),
        GeneratorFamily(PrivacyGenerator),
        GeneratorFamily(LLMGenerator, absent="no LLM endpoint is configured (DRIFTLOOP_LLM_BASE_URL is unset)"),
    )
}
"""Every generator family by name: the names recipes may use."""
GENERATORS: dict[str, Generator] = {name: f.generator() for name, f in GENERATOR_FAMILIES.items() if f.absent is None}
"""The generators every process has."""
TECHNIQUES: tuple[str, ...] = tuple(t for f in GENERATOR_FAMILIES.values() for t in f.generator.techniques)
"""Every ``Sample.technique`` a generator writes (metric label values)."""
