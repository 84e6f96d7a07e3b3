"""Edge cases around the drifted traffic: the evidence prompts with typos, casing, whitespace, Unicode confusables,
invisible characters, truncation, length extremes, code-switching, and rare-case framings of the same request.
A robust model answers them as it would the original: each sample names its original in ``metadata["source"]``
(:func:`~generators.references.source_id`), and the teacher's target is the answer to that original.

>>> from monitor.incidents import DriftIncident, Evidence
>>> evidence = [Evidence(prompt="How do I sort a list in Python?", response="Use sorted().")]
>>> incident = DriftIncident(id="i", kind="input-shift", segment="m/r/t", features=[], detected_after_events=1,
...                          onset_event=1, evidence=evidence)
>>> [s.technique for s in PerturbationGenerator().generate(incident, 3, seed="0")]
['truncation', 'typos', 'confusables']
>>> confusables("paypal", random.Random(1)) == "paypal", [c for c in confusables("paypal", random.Random(1)) if c > "z"]
(False, ['р', 'р', 'а'])
>>> code_switching("How can you help me with the plan?", random.Random(2))
'How puedes you ayuda me con the plan?'
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator

from generators.references import expected_for, source_id
from generators.samples import RuleGenerator, Sample
from monitor.incidents import DriftIncident

ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
KEYBOARD_NEIGHBOURS = dict(zip("qwertyuiopasdfghjklzxcvbnm", "wqeruyoipsadfghjklkxzcvbnm", strict=True))
CONFUSABLES = {  # Latin letter -> a Cyrillic or Greek letter that renders the same
    "a": "а", "c": "с", "e": "е", "i": "і", "j": "ј", "o": "о", "p": "р", "s": "ѕ", "x": "х", "y": "у",
    "A": "А", "B": "В", "C": "С", "E": "Е", "H": "Н", "I": "І", "K": "К", "M": "М", "O": "О", "P": "Р",
    "T": "Т", "X": "Х", "Y": "Υ",
}  # fmt: skip
CODE_SWITCH = {  # common English words and their Spanish, French and German equivalents
    "how": ("cómo", "comment", "wie"),
    "what": ("qué", "quoi", "was"),
    "why": ("por qué", "pourquoi", "warum"),
    "please": ("por favor", "s'il vous plaît", "bitte"),
    "thanks": ("gracias", "merci", "danke"),
    "and": ("y", "et", "und"),
    "with": ("con", "avec", "mit"),
    "without": ("sin", "sans", "ohne"),
    "the": ("el", "le", "die"),
    "is": ("es", "est", "ist"),
    "for": ("para", "pour", "für"),
    "my": ("mi", "mon", "mein"),
    "can": ("puedes", "peux", "kannst"),
    "you": ("tú", "tu", "du"),
    "write": ("escribe", "écris", "schreib"),
    "explain": ("explica", "explique", "erkläre"),
    "help": ("ayuda", "aide", "hilfe"),
    "about": ("sobre", "sur", "über"),
    "now": ("ahora", "maintenant", "jetzt"),
    "today": ("hoy", "aujourd'hui", "heute"),
}
RARE_FRAMINGS = (
    "Quick question (sorry if this is obvious): {prompt}",
    "URGENT!!! {prompt} ??",
    "> forwarded message\n> {prompt}\n\ncan you answer the above",
    "```\n{prompt}\n```",
    "{prompt} 🙏🙏",
    "my boss asked me this and I have no idea: {prompt}",
    "{prompt}\n\n(answering from my phone, excuse typos)",
    "Q: {prompt}\nA:",
)
WORD = re.compile(r"[A-Za-z']+")


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
    return rng.choice(("  ", "\t", "\n\n", "\u00a0")).join(text.split(" ")) + rng.choice(("", "   ", "\n"))


def confusables(text: str, rng: random.Random) -> str:
    """Some letters swapped for look-alikes from other scripts (homoglyphs)."""
    return "".join(CONFUSABLES[c] if c in CONFUSABLES and rng.random() < 0.5 else c for c in text)


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


def code_switching(text: str, rng: random.Random) -> str:
    """Common words switched to Spanish, French or German, one language per prompt."""
    language = rng.randrange(3)

    def switch(match: re.Match[str]) -> str:
        word = match.group()
        other = CODE_SWITCH.get(word.lower())
        if other is None or rng.random() < 0.3:
            return word
        return other[language].capitalize() if word[0].isupper() else other[language]

    return WORD.sub(switch, text)


def rare_framing(text: str, rng: random.Random) -> str:
    """The same request in a rare framing: quoted, fenced, urgent, forwarded, with emoji."""
    return rng.choice(RARE_FRAMINGS).format(prompt=text)


TECHNIQUES: dict[str, Callable[[str, random.Random], str]] = {
    f.__name__: f
    for f in (
        typos,
        casing,
        whitespace,
        confusables,
        zero_width,
        truncation,
        length_extremes,
        code_switching,
        rare_framing,
    )
}
ATTEMPTS = 5


class PerturbationGenerator(RuleGenerator):
    """Evidence prompts perturbed; expected: the answer the original deserved."""

    name = "perturbation"
    version = "1.1"
    techniques = tuple(TECHNIQUES)

    def samples(self, incident: DriftIncident, count: int, seed: str) -> Iterator[Sample]:
        rng = random.Random(f"{seed}:{incident.id}:{self.name}")
        for _ in range(count):
            evidence = rng.choice(incident.evidence)
            expected, source = expected_for(evidence), {"source": source_id(evidence.prompt)}
            for _ in range(ATTEMPTS):  # a technique can leave a prompt unchanged (casing of "123"): try another
                technique = rng.choice(sorted(TECHNIQUES))
                prompt = TECHNIQUES[technique](evidence.prompt, rng)
                if prompt != evidence.prompt:
                    yield Sample.make(prompt, technique, expected, "", f"{self.name}/{self.version}", seed, source)
                    break
