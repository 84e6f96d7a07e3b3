"""Edge cases around the drifted traffic: the evidence prompts with typos, casing, whitespace,
invisible characters and truncation. A robust model answers them as it answered the original.

>>> from monitor.incidents import DriftIncident, Evidence
>>> evidence = [Evidence(prompt="How do I sort a list in Python?", response="Use sorted().")]
>>> incident = DriftIncident(id="i", kind="input-shift", segment="m/r/t", features=[], detected_after_events=1,
...                          onset_event=1, evidence=evidence)
>>> [s.technique for s in PerturbationGenerator().generate(incident, 3, seed="0")]
['truncation', 'whitespace', 'length_extremes']
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from generators.references import reference_for
from generators.samples import Sample
from monitor.incidents import DriftIncident

ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\ufeff")
KEYBOARD_NEIGHBOURS = dict(zip("qwertyuiopasdfghjklzxcvbnm", "wqeruyoipsadfghjklkxzcvbnm", strict=True))


def typos(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(max(1, len(chars) // 25)):
        i = rng.randrange(len(chars))
        op = rng.choice(("swap", "drop", "neighbour"))
        if op == "swap" and i + 1 < len(chars):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif op == "drop" and len(chars) > 1:
            del chars[i]
        else:
            chars[i] = KEYBOARD_NEIGHBOURS.get(chars[i].lower(), chars[i])
    return "".join(chars)


def casing(text: str, rng: random.Random) -> str:
    return rng.choice((str.upper, str.lower, str.swapcase))(text)


def whitespace(text: str, rng: random.Random) -> str:
    return rng.choice(("  ", "\t", "\n\n")).join(text.split(" ")) + rng.choice(("", "   ", "\n"))


def zero_width(text: str, rng: random.Random) -> str:
    return "".join(c + rng.choice(ZERO_WIDTH) if c == " " or rng.random() < 0.1 else c for c in text)


def truncation(text: str, rng: random.Random) -> str:
    return text[: max(8, int(len(text) * rng.uniform(0.4, 0.8)))]


def length_extremes(text: str, rng: random.Random) -> str:
    """A very short rewrite or one buried in long, repeated context."""
    if rng.random() < 0.5:
        return " ".join(text.split()[:3]) + "?"
    padding = " ".join([rng.choice(("Context:", "Note:", "FYI:")), text] * rng.randint(4, 12))
    return f"{padding}\n\nWith all of the above in mind: {text}"


TECHNIQUES: dict[str, Callable[[str, random.Random], str]] = {
    f.__name__: f for f in (typos, casing, whitespace, zero_width, truncation, length_extremes)
}
ATTEMPTS = 5


class PerturbationGenerator:
    name = "perturbation"
    version = "1.0"

    def generate(self, incident: DriftIncident, count: int, seed: str) -> Iterator[Sample]:
        rng = random.Random(f"{seed}:{incident.id}:{self.name}")
        for _ in range(count):
            evidence = rng.choice(incident.evidence)
            expected, answer = reference_for(evidence)
            for _ in range(ATTEMPTS):  # a technique can leave a prompt unchanged (casing of "123"): try another
                technique = rng.choice(sorted(TECHNIQUES))
                prompt = TECHNIQUES[technique](evidence.prompt, rng)
                if prompt != evidence.prompt:
                    yield Sample.make(prompt, technique, expected, answer, f"{self.name}/{self.version}", seed)
                    break
