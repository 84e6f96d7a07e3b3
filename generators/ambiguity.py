"""Contradictory and ambiguous inputs around the drifted topics: underspecified requests, contradictory
constraints and false premises. A robust model asks what is meant, or points out the conflict or the false
premise, instead of guessing; every sample expects ``ask_to_clarify`` and says in ``metadata["clarify"]`` what the
clarifying reply should address (the teacher's brief).

>>> from monitor.incidents import DriftIncident, Evidence
>>> evidence = [Evidence(prompt="How do I merge two dictionaries in Python?", response="Use a | b.")]
>>> incident = DriftIncident(id="i", kind="input-shift", segment="m/r/t", features=[], detected_after_events=1,
...                          onset_event=1, evidence=evidence)
>>> samples = list(AmbiguityGenerator().generate(incident, 3, seed="0"))
>>> [s.technique for s in samples], {str(s.expected) for s in samples}
(['contradictory_constraints', 'false_premise', 'underspecified'], {'ask_to_clarify'})
>>> samples[2].prompt
'How long does the merge take?'
>>> topic_terms("How do I merge two dictionaries in Python?")
['dictionaries', 'python', 'merge']
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

from generators.samples import Expected, RuleGenerator, Sample
from monitor.incidents import DriftIncident

STOPWORD_TEXT = (
    "a about above after again all also am an and any are as at be because been before being below between both but "
    "by can could did do does doing down during each few for from further had has have having he her here hers him "
    "his how i if in into is it its just me more most my no nor not now of off on once only or other our out over "
    "own please same she should so some such than that the their them then there these they this those through to "
    "too under until up very was we were what when where which while who whom why will with would you your tell "
    "give write make explain need want like get know help one two three"
)
STOPWORDS = frozenset(STOPWORD_TEXT.split())
WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")

UNDERSPECIFIED = (
    ("Which {term} is better?", "better for what, and compared with which alternatives"),
    ("Can you fix the {term} one?", "which {term} you mean and what is going wrong with it"),
    ("Do the same for the {term}, but for the other one.", "what 'the same' and 'the other one' refer to"),
    ("How long does the {term} take?", "which {term} and which step you are timing"),
    ("Is it safe to use {term} here?", "what 'here' is and how you plan to use {term}"),
    ("Make the {term} part shorter.", "which text you want shortened and how short it should be"),
)
CONFLICTS = (
    ("Answer in exactly one word.", "Explain your reasoning in at least three paragraphs."),
    ("Keep it under ten words.", "Include a detailed step-by-step example."),
    ("Reply only in French.", "Do not use any French words."),
    ("Use no numbers at all.", "Present the answer as a numbered table of figures."),
    ("Do not mention {term}.", "Make {term} the focus of the answer."),
    ("Give me a definitive answer.", "Present every option as equally valid without picking one."),
)
FALSE_PREMISES = (
    "Since {term} was banned worldwide in 2019, what should I use instead?",
    "Why does {term} always give the wrong result?",
    "Given that {term} was discontinued last month, how do I migrate away from it?",
    "My teacher said {term} only works on Tuesdays. Why is that?",
    "Now that everyone agrees {term} is obsolete, what replaced it?",
)


def topic_terms(prompt: str, limit: int = 3) -> list[str]:
    """The longest content words of ``prompt`` (lowercased, stopwords dropped), as stand-ins for its topic."""
    words = dict.fromkeys(w.lower() for w in WORD.findall(prompt) if w.lower() not in STOPWORDS)
    return sorted(words, key=len, reverse=True)[:limit]


def underspecified(prompt: str, term: str, rng: random.Random) -> tuple[str, str]:
    template, missing = rng.choice(UNDERSPECIFIED)
    return template.format(term=term), f"ask {missing.format(term=term)}"


def contradictory_constraints(prompt: str, term: str, rng: random.Random) -> tuple[str, str]:
    first, second = (c.format(term=term) for c in rng.choice(CONFLICTS))
    if rng.random() < 0.5:
        first, second = second, first
    return f"{prompt} {first} {second}", f'point out that "{first}" and "{second}" conflict and ask which to follow'


def false_premise(prompt: str, term: str, rng: random.Random) -> tuple[str, str]:
    question = rng.choice(FALSE_PREMISES).format(term=term)
    return question, f"point out that the premise about {term} is unsupported and ask where it comes from"


TECHNIQUES = {f.__name__: f for f in (contradictory_constraints, false_premise, underspecified)}


class AmbiguityGenerator(RuleGenerator):
    """Requests a model should not answer as asked: it should ask, or point out the conflict or false premise."""

    name = "ambiguity"
    version = "1.0"
    techniques = tuple(TECHNIQUES)

    def samples(self, incident: DriftIncident, count: int, seed: str) -> Iterator[Sample]:
        rng = random.Random(f"{seed}:{incident.id}:{self.name}")
        origin = f"{self.name}/{self.version}"
        for i in range(count):
            technique = sorted(TECHNIQUES)[i % len(TECHNIQUES)]
            prompt = rng.choice(incident.evidence).prompt
            term = rng.choice(topic_terms(prompt) or ["this"])
            text, clarify = TECHNIQUES[technique](prompt, term, rng)
            yield Sample.make(text, technique, Expected.CLARIFY, "", origin, seed, {"term": term, "clarify": clarify})
