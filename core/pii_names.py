"""Person names: the shape a full name has, and a recognizer of first names from a gazetteer followed by a surname.

spaCy's small English model misses many names in other languages' sentences and takes words for names (``Java``,
``Meine Kartennummer``). A name here is two to four capitalised words, none of them a stop word of the languages
driftloop sees, the first of them, for the gazetteer, one of the 40,000 first names of gender-guesser's dictionary
(Jörg Michael's ``nam_dict.txt``, names of most European and many other countries).

>>> name_like("Mathilde Faure"), name_like("Meine Kartennummer"), name_like("Java")
(True, False, False)
>>> [r.entity_type for r in FirstNameRecognizer().analyze("Hier, j'ai rencontré Mathilde Faure et", ["PERSON"])]
['PERSON']
"""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path

import spacy
from gender_guesser.detector import Detector
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import SpacyRecognizer
from spacy.lookups import Lookups

from core.pii_model import MODEL

PARTICLES = frozenset({"de", "da", "di", "del", "della", "van", "von", "der", "den", "du", "la", "le", "y", "bin"})
"""Lower-case words a surname may hold (Ludwig van Beethoven)."""


def stop_words(language: str) -> frozenset[str]:
    """spaCy's stop words of ``language``, read from its ``stop_words`` module alone: importing the language's package
    (``spacy.lang.fr``) would build its tokenizer exceptions too, 2.3 s of every process start for French.

    >>> "les" in stop_words("fr")
    True
    """
    path = Path(spacy.__file__).parent / "lang" / language / "stop_words.py"
    if not path.is_file():
        raise FileNotFoundError(f"spaCy {spacy.__version__} has no {path}: pin the spaCy of pyproject.toml")
    spec = importlib.util.spec_from_file_location(f"driftloop_stop_words_{language}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return frozenset(module.STOP_WORDS)


LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pt")
"""The languages whose stop words are never part of a name."""
STOP_WORDS = frozenset().union(*map(stop_words, LANGUAGES)) - PARTICLES
WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
NAME_SCORE = 0.7


def capitalised(word: str) -> bool:
    """A word written as a name is: an upper-case letter, then lower-case ones (each part of a double name too).

    >>> capitalised("Jean-Michel"), capitalised("SLACK"), capitalised("Appelez-moi")
    (True, False, False)
    """
    return all(part[:1].isupper() and part[1:].islower() for part in re.split(r"[-'’]", word))


def name_like(text: str) -> bool:
    """Whether ``text`` has a full name's shape: two to four capitalised words (particles between them), none of
    them a stop word."""
    words = text.split()
    inner = [w for w in words[1:-1] if w not in PARTICLES]
    named = [words[0], *inner, words[-1]] if len(words) > 1 else words
    return (
        2 <= len(words) <= 5 and "\n" not in text and all(capitalised(w) and w.lower() not in STOP_WORDS for w in named)
    )


@cache
def first_names() -> frozenset[str]:
    """The gazetteer's first names, capitalised, stop words left out."""
    return frozenset(name for name in Detector(case_sensitive=True).names if capitalised(name)) - {
        word.capitalize() for word in STOP_WORDS
    }


class FirstNameRecognizer(EntityRecognizer):
    """``PERSON``: a known first name followed by one to three capitalised words (particles between them), unless
    both the first and the last word are common English words (``Core Value``)."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="first names")

    def load(self) -> None:
        first_names()

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """The full names in ``text`` that begin with a known first name."""
        words = list(WORD.finditer(text))
        results = []
        for i, word in enumerate(words):
            if word.group() not in first_names():
                continue
            end = i
            for following in words[i + 1 : i + 5]:
                gap = text[words[end].end() : following.start()]
                if not gap.isspace() or "\n" in gap:
                    break
                if following.group() in PARTICLES:
                    continue
                if not capitalised(following.group()) or following.group().lower() in STOP_WORDS:
                    break
                end = words.index(following)
            if end > i and (surname_like(word.group()) or surname_like(words[end].group())):
                results.append(RecognizerResult("PERSON", word.start(), words[end].end(), NAME_SCORE))
        return results


@cache
def common_words() -> frozenset[str]:
    """English nouns, verbs, adjectives and adverbs: the word index of the spaCy model's lemmatizer (WordNet's)."""
    tables = Lookups().from_disk(MODEL / "lemmatizer" / "lookups")
    return frozenset(word for words in tables.get_table("lemma_index").values() for word in words)


def surname_like(word: str) -> bool:
    """Whether ``word`` is no common English word (nor the plural of one)."""
    lower = word.lower()
    return lower not in common_words() and lower.removesuffix("s") not in common_words()


class FullNameSpacyRecognizer(SpacyRecognizer):
    """spaCy's ``PERSON`` entities that have a full name's shape (:func:`name_like`) and either begin with a known
    first name or end in a word that is no common English word (so not ``Machine Learning``, ``Goblin King``)."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"])

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results = super().analyze(text, entities, nlp_artifacts)
        names = [text[r.start : r.end] for r in results]
        return [
            result
            for result, name in zip(results, names, strict=True)
            if name_like(name) and (name.split()[0] in first_names() or surname_like(name.split()[-1]))
        ]
