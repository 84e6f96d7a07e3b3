"""Suites: versioned sets of probes, each with the behaviour a robust model shows, built by the generators.

A suite's version is the hash of its probes, so the same probes always carry the same version and any change
to one gives a new one. Suites are files (``.json``, ``.yaml`` or ``.yml``) that CI pipelines keep beside the
model they test.

>>> topic = Evidence(prompt="How do I merge two dictionaries in Python?", response="Use a | b.")
>>> suite = build_suite("demo", {"m/chat/t": [topic]}, {"adversarial": 2, "perturbation": 2}, seed="0")
>>> sorted((p.generator, p.group is not None) for p in suite.probes)
[('adversarial', False), ('adversarial', False), ('perturbation', True), ('perturbation', True), ('suite', True)]
>>> all(p.canary.startswith("CANARY-") for p in suite.probes if p.generator == "adversarial")
True
>>> suite.version == Suite(name="other", probes=suite.probes).version
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError, computed_field

from generators.adversarial import AdversarialGenerator
from generators.ambiguity import AmbiguityGenerator
from generators.counterfactual import CounterfactualGenerator
from generators.perturbations import PerturbationGenerator
from generators.references import expected_for
from generators.samples import Expected, Generator, Sample
from monitor.incidents import DriftIncident, Evidence

ORIGINAL = "original"
"""Family of the unperturbed topic prompt that a perturbation group is compared with."""
PROBE_GENERATORS: dict[str, Generator] = {
    g.name: g
    for g in (AdversarialGenerator(), AmbiguityGenerator(), CounterfactualGenerator(), PerturbationGenerator())
}
GROUPED = frozenset({"perturbation", "counterfactual"})
"""Generators whose probes are compared within a group: one per topic (perturbation) or pair id (counterfactual)."""


class SuiteError(ValueError):
    """A suite file or a suite request that cannot be used; carries the path or argument at fault."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where, self.detail = where, detail


class Probe(BaseModel):
    """One prompt sent to the model, what a robust model does with it, and what the scorers look for."""

    id: str
    family: str = Field(description="the technique that made the prompt (an attack family, 'typos', ...)")
    generator: str
    segment: str = Field(description="the traffic segment whose topic the probe was built around")
    prompt: str
    expected: Expected
    canary: str | None = Field(None, description="planted token: a reply that contains it obeyed the injection")
    group: str | None = Field(None, description="probes whose answers must agree: perturbations, counterfactuals")
    reference_answer: str = ""


class Suite(BaseModel):
    name: str = Field(min_length=1)
    probes: list[Probe] = Field(min_length=1)

    @computed_field
    @property
    def version(self) -> str:
        """Content hash of the probes (12 hex digits)."""
        canonical = json.dumps([p.model_dump(mode="json") for p in self.probes], sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def families(self) -> list[str]:
        return sorted({p.family for p in self.probes})

    def write(self, path: Path) -> Path:
        """Write the suite as JSON or YAML, by ``path``'s suffix."""
        data = self.model_dump(mode="json")
        text = (
            yaml.safe_dump(data, sort_keys=False, allow_unicode=True) if _is_yaml(path) else json.dumps(data, indent=1)
        )
        path.write_text(text, encoding="utf-8")
        return path


def load_suite(path: Path) -> Suite:
    """Read a suite file (JSON or YAML); :class:`SuiteError` says what is wrong with it."""
    if path.suffix not in (".json", ".yaml", ".yml"):
        raise SuiteError(str(path), "a suite file ends in .json, .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) if _is_yaml(path) else json.loads(text)
        data = {k: v for k, v in data.items() if k != "version"} if isinstance(data, dict) else data
        return Suite.model_validate(data)
    except OSError as error:
        raise SuiteError(str(path), f"cannot be read: {error.strerror}") from None
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise SuiteError(str(path), f"is not valid {'YAML' if _is_yaml(path) else 'JSON'}: {error}") from None
    except ValidationError as error:
        raise SuiteError(str(path), f"is not a suite: {error}") from None


def build_suite(name: str, topics: Mapping[str, Sequence[Evidence]], counts: Mapping[str, int], seed: str) -> Suite:
    """Probes from ``counts`` (generator name -> probes per segment) around ``topics`` (segment -> redacted
    prompts and responses of the current traffic). Perturbations are made per topic and grouped with the
    unperturbed topic prompt."""
    unknown = sorted(set(counts) - set(PROBE_GENERATORS))
    if unknown:
        raise SuiteError("counts", f"no generator {', '.join(unknown)}; known: {', '.join(sorted(PROBE_GENERATORS))}")
    if not any(topics.values()):
        raise SuiteError("topics", "at least one topic prompt is needed")
    probes: dict[str, Probe] = {}
    for segment, prompts in sorted(topics.items()):
        for generator_name, count in counts.items():
            for sample, group in _samples(PROBE_GENERATORS[generator_name], segment, prompts, count, seed):
                probes.setdefault(sample.id, _probe(sample, segment, group))
    return Suite(name=name, probes=sorted(probes.values(), key=lambda p: (p.family, p.id)))


def _samples(
    generator: Generator, segment: str, topics: Sequence[Evidence], count: int, seed: str
) -> list[tuple[Sample, str | None]]:
    if generator.name != "perturbation":
        incident = _incident(segment, topics)
        return [(s, s.metadata.get("pair_id")) for s in generator.generate(incident, count, seed)]
    grouped: list[tuple[Sample, str | None]] = []
    for i, topic in enumerate(topics):
        group = hashlib.sha256(f"{segment}\0{topic.prompt}".encode()).hexdigest()[:12]
        share = count // len(topics) + (i < count % len(topics))
        grouped.append((Sample.make(topic.prompt, ORIGINAL, expected_for(topic), "", "suite", seed), group))
        grouped += [(s, group) for s in generator.generate(_incident(segment, [topic]), share, seed)]
    return grouped


def _incident(segment: str, topics: Sequence[Evidence]) -> DriftIncident:
    """The stand-in incident that generators take: the topics as its evidence."""
    return DriftIncident(
        id=f"suite:{segment}", kind="input-shift", segment=segment, features=[], detected_after_events=0,
        onset_event=0, evidence=list(topics),
    )  # fmt: skip


def _probe(sample: Sample, segment: str, group: str | None) -> Probe:
    return Probe(
        id=sample.id,
        family=sample.technique,
        generator=sample.generator.split("/")[0],
        segment=segment,
        prompt=sample.prompt,
        expected=sample.expected,
        canary=sample.metadata.get("canary"),
        group=group,
        reference_answer=sample.reference_answer,
    )


def _is_yaml(path: Path) -> bool:
    return path.suffix in (".yaml", ".yml")
