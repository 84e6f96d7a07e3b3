"""De-biasing: counterfactual tuples that differ only in a demographic term or a name, one prompt per group, and
a representation audit that counts each group's terms in a set of texts.

A tuple swaps the one group term of an evidence prompt for every group's term, or, when the prompt names no
group, frames it with one; the members share ``metadata["pair_id"]`` and expect the same answer whatever the
group (``answer_without_bias``): the teacher writes one target for the whole tuple. Tuples are whole, so every
group gets the same count.

>>> from monitor.incidents import DriftIncident, Evidence
>>> evidence = [Evidence(prompt="What jobs suit a woman who likes maths?", response="Actuary, engineer, ...")]
>>> incident = DriftIncident(id="i", kind="input-shift", segment="m/r/t", features=[], detected_after_events=1,
...                          onset_event=1, evidence=evidence)
>>> samples = list(CounterfactualGenerator().generate(incident, 3, seed="0"))
>>> for sample in samples:
...     print(sample.prompt)
What jobs suit a woman who likes maths?
What jobs suit a man who likes maths?
What jobs suit a non-binary person who likes maths?
>>> representation_audit([s.prompt for s in samples]).counts["gender"]
{'female': 1, 'male': 1, 'non-binary': 1}
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator

from pydantic import BaseModel, computed_field

from generators.references import expected_for
from generators.samples import Expected, RuleGenerator, Sample
from monitor.incidents import DriftIncident, Evidence

#: axis -> group -> its terms; the i-th term of every group of an axis is the same form (singular, plural, …).
AXES: dict[str, dict[str, tuple[str, ...]]] = {
    "gender": {
        "female": ("woman", "women"),
        "male": ("man", "men"),
        "non-binary": ("non-binary person", "non-binary people"),
    },
    "age": {
        "young": ("young person", "young people"),
        "middle-aged": ("middle-aged person", "middle-aged people"),
        "older": ("elderly person", "elderly people"),
    },
    "religion": {
        "christian": ("Christian",),
        "muslim": ("Muslim",),
        "jewish": ("Jewish",),
        "hindu": ("Hindu",),
        "buddhist": ("Buddhist",),
    },
    "name": {  # first names that audit studies use as signals of perceived origin
        "anglo": ("Emily", "Greg", "Anne"),
        "african-american": ("Lakisha", "Jamal", "Keisha"),
        "hispanic": ("Maria", "Carlos", "Lucia"),
        "east-asian": ("Mei", "Wei", "Yuki"),
        "south-asian": ("Priya", "Arjun", "Anjali"),
        "arab": ("Fatima", "Omar", "Layla"),
    },
}
#: Framings for a prompt that names no group: ``{term}`` is a name, or a group's first term with its article.
FRAMES: dict[str, tuple[str, ...]] = {
    "gender": ("As {term}, I'd like to know: {prompt}", "My neighbour is {term}. They asked me: {prompt}"),
    "age": ("I'm {term}. {prompt}", "Asking for {term} I care for: {prompt}"),
    "religion": ("As {term} student, I wonder: {prompt}", "I'm {term} and new here. {prompt}"),
    "name": ("{term} asks: {prompt}", "Hi, my name is {term}. {prompt}"),
}
TECHNIQUES = {axis: f"counterfactual_{axis}" for axis in AXES}


def _pattern(term: str) -> re.Pattern[str]:
    """``term`` as a whole word or phrase, with the article before it; lowercase terms match in any case."""
    return re.compile(rf"\b(?:(an?) )?{re.escape(term)}\b", 0 if term[0].isupper() else re.IGNORECASE)


TERMS: dict[str, list[tuple[str, int, re.Pattern[str]]]] = {
    axis: [(group, i, _pattern(term)) for group, terms in groups.items() for i, term in enumerate(terms)]
    for axis, groups in AXES.items()
}


def article(word: str) -> str:
    """
    >>> article("elderly person"), article("man")
    ('an', 'a')
    """
    return "an" if word[0].lower() in "aeiou" else "a"


def mentions(text: str, axis: str) -> list[tuple[str, int, re.Match[str]]]:
    """The group terms of ``axis`` in ``text``: (group, form index, match), longest first where they overlap."""
    found: list[tuple[str, int, re.Match[str]]] = []
    for group, index, pattern in sorted(TERMS[axis], key=lambda t: -len(t[2].pattern)):
        for match in pattern.finditer(text):
            if not any(m.start() < match.end() and match.start() < m.end() for _, _, m in found):
                found.append((group, index, match))
    return found


class RepresentationAudit(BaseModel):
    """How often each group's terms occur in a set of texts."""

    counts: dict[str, dict[str, int]]
    """axis -> group -> occurrences."""

    @computed_field
    @property
    def balanced(self) -> dict[str, bool]:
        """axis -> whether every group of it occurs equally often (an axis nobody mentions is balanced)."""
        return {axis: len(set(groups.values())) <= 1 for axis, groups in self.counts.items()}


def representation_audit(texts: list[str]) -> RepresentationAudit:
    """Counts of group terms per axis and group in ``texts``: run it on the evidence and on the dataset."""
    counts = {axis: dict.fromkeys(groups, 0) for axis, groups in AXES.items()}
    for text in texts:
        for axis in AXES:
            for group, _, _ in mentions(text, axis):
                counts[axis][group] += 1
    return RepresentationAudit(counts=counts)


def _swap(text: str, match: re.Match[str], term: str) -> tuple[str, str]:
    """``text`` with ``match`` replaced by ``term`` (article and capitalisation kept in step); the new span."""
    new = f"{article(term)} {term}" if match.group(1) else term
    new = new[0].upper() + new[1:] if match.group()[0].isupper() else new
    return text[: match.start()] + new + text[match.end() :], new


def _tuple(prompt: str, axis: str, rng: random.Random) -> list[tuple[str, str, str]] | None:
    """(prompt, inserted term, group) for every group of ``axis``; None when ``prompt`` does not fit the axis."""
    if any(mentions(prompt, other) for other in AXES if other != axis):
        return None  # a term of another axis would be repeated in every member and unbalance that axis
    found = mentions(prompt, axis)
    if len(found) > 1:
        return None
    if found:
        [(_, index, match)] = found
        return [(*_swap(prompt, match, terms[index]), group) for group, terms in AXES[axis].items()]
    frame, name = rng.choice(FRAMES[axis]), rng.randrange(len(next(iter(AXES[axis].values()))))
    members = []
    for group, terms in AXES[axis].items():
        term = terms[name] if axis == "name" else f"{article(terms[0])} {terms[0]}"
        members.append((frame.format(term=term, prompt=prompt), term, group))
    return members


class CounterfactualGenerator(RuleGenerator):
    """Tuples of prompts identical but for the group term, balanced across the groups of an axis."""

    name = "counterfactual"
    version = "1.0"
    techniques = tuple(TECHNIQUES.values())

    def samples(self, incident: DriftIncident, count: int, seed: str) -> Iterator[Sample]:
        """Whole tuples only, so up to ``count`` samples (none when ``count`` is below the smallest axis)."""
        rng = random.Random(f"{seed}:{incident.id}:{self.name}")
        benign = [e for e in incident.evidence if expected_for(e) == Expected.ANSWER] or incident.evidence
        origin, left, seen = f"{self.name}/{self.version}", count, set()
        for _ in range(count):
            axis = rng.choice(sorted(AXES))
            if len(AXES[axis]) > left:
                fitting = sorted(a for a in AXES if len(AXES[a]) <= left)
                if not fitting:
                    return
                axis = rng.choice(fitting)
            evidence: Evidence = rng.choice(benign)
            members = _tuple(evidence.prompt, axis, rng)
            if members is None:
                continue
            pair_id = hashlib.sha256("\0".join(p for p, _, _ in members).encode()).hexdigest()[:16]
            if pair_id in seen:  # the same tuple again: it would unbalance nothing, but add nothing either
                continue
            seen.add(pair_id)
            for prompt, term, group in members:
                metadata = {"pair_id": pair_id, "axis": axis, "group": group, "term": term}
                yield Sample.make(prompt, TECHNIQUES[axis], Expected.ANSWER_WITHOUT_BIAS, "", origin, seed, metadata)
            left -= len(members)
