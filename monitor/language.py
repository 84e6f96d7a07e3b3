"""Language of a prompt, by lingua (its models ship in the ``lingua-language-detector`` wheel: no download).

Most traffic is plainly English, so a fast path answers first: ASCII text with at least two distinct
English function words (:data:`ENGLISH_WORDS`) is English. Everything else goes to lingua, which knows only
:data:`LANGUAGES` (those common in LLM chat traffic such as ShareGPT) and runs in its low-accuracy mode on
the first :data:`MAX_CHARS` characters, about a quarter of the full model's cost. Text that lingua cannot
place with confidence (digits only, or two languages scoring alike) is :data:`UNKNOWN`. One-word prompts
("continue") get lingua's guess, often wrong: a stationary error rate that detectors absorb in the reference.

>>> detect_languages(["How do I sort a list in Python?", "如何在Python中对列表进行排序？", "12345", "¿Qué hora es?"])
['en', 'zh', 'und', 'es']
"""

from __future__ import annotations

import re
from functools import cache

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

#: ISO 639-1 codes of the languages the detector chooses from.
LANGUAGES = (
    "en", "zh", "ko", "ja", "es", "fr", "de", "pt", "ru", "it", "vi", "ar", "id", "tr", "nl", "pl", "uk", "hi",
)  # fmt: skip
UNKNOWN = "und"
MAX_CHARS = 200
MIN_RELATIVE_DISTANCE = 0.15
"""lingua's minimum relative distance between the two best languages; closer answers are :data:`UNKNOWN`."""
ENGLISH_WORDS = frozenset({
    "the", "is", "are", "was", "were", "what", "how", "why", "which", "who", "you", "your", "this", "that", "with",
    "and", "of", "to", "for", "can", "could", "would", "should", "please", "write", "explain", "does", "do", "my",
    "me", "it", "not", "be", "have", "has", "from", "about", "i",
})  # fmt: skip
_WORDS = re.compile(r"[a-z']+")


@cache
def detector() -> LanguageDetector:
    """The process-wide lingua detector over :data:`LANGUAGES` (models load on first use)."""
    languages = [Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in LANGUAGES]
    return (
        LanguageDetectorBuilder.from_languages(*languages)
        .with_low_accuracy_mode()
        .with_minimum_relative_distance(MIN_RELATIVE_DISTANCE)
        .build()
    )


def _code(language: Language | None) -> str:
    return language.iso_code_639_1.name.lower() if language is not None else UNKNOWN


def plainly_english(text: str) -> bool:
    """The fast path: ASCII text with at least two distinct words of :data:`ENGLISH_WORDS`.

    >>> plainly_english("What is a monad?"), plainly_english("¿Qué es una mónada?"), plainly_english("continue")
    (True, False, False)
    """
    head = text[:MAX_CHARS]
    return head.isascii() and len(ENGLISH_WORDS.intersection(_WORDS.findall(head.lower()))) >= 2


def detect_language(text: str) -> str:
    """ISO 639-1 code of ``text``'s language, or :data:`UNKNOWN`.

    >>> detect_language("Wie spät ist es?")
    'de'
    """
    return "en" if plainly_english(text) else _code(detector().detect_language_of(text[:MAX_CHARS]))


def detect_languages(texts: list[str]) -> list[str]:
    """:func:`detect_language` of each text; lingua sees the texts off the fast path in one parallel call."""
    languages = ["en" if plainly_english(text) else None for text in texts]
    rest = [i for i, language in enumerate(languages) if language is None]
    detected = detector().detect_languages_in_parallel_of([texts[i][:MAX_CHARS] for i in rest])
    for i, language in zip(rest, detected, strict=True):
        languages[i] = _code(language)
    return languages
