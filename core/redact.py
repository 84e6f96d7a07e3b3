"""Masks personal data in text before it is stored: with :mod:`core.pii`'s detector and Presidio's anonymizer.

Every app redacts, counts and substitutes through these three functions, so they agree on what personal data is.

>>> redact("Ann Lee: ann@example.org, +44 20 7946 0958, key AKIAIOSFODNN7EXAMPLE")
'<PERSON>: <EMAIL>, <PHONE>, key <API_KEY>'
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import cache

from presidio_analyzer import RecognizerResult
from presidio_anonymizer import AnonymizerEngine, ConflictResolutionStrategy, OperatorConfig
from presidio_anonymizer.entities import EngineResult

from core.pii import PLACEHOLDERS, analyze_all

_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")
_SYMBOL_RUN = re.compile(r"(?:[^\w\s]|_){32,}")
"""32 or more symbols in a row (no letter, digit or space): no personal-data value holds such a run, and spaCy's
tokenizer takes time quadratic in its length (20,000 brackets: about a minute)."""


@cache
def _anonymizer() -> AnonymizerEngine:
    return AnonymizerEngine()


def _ascii_digits(text: str) -> str:
    """``text`` with every decimal digit (Arabic-Indic, Devanagari, full-width, …) written as its ASCII digit: the
    same length, so positions found in it hold in ``text``."""
    if text.isascii():
        return text
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text)


def _blank_symbol_runs(text: str) -> str:
    """``text`` with each run of :data:`_SYMBOL_RUN` written as spaces: the same length, so positions found in it
    hold in ``text``.

    >>> _blank_symbol_runs("a" + "[" * 40 + "b ]]")
    'a                                        b ]]'
    """
    return _SYMBOL_RUN.sub(lambda run: " " * len(run.group()), text)


def _analysed(text: str) -> str:
    """What the detector reads of ``text`` (invisible characters already dropped): digits written in ASCII, long runs
    of symbols blanked; the same length, so positions found in it hold in ``text``."""
    return _blank_symbol_runs(_ascii_digits(text))


def _anonymize(text: str, findings: list[RecognizerResult], replace: Callable[[str, str], str]) -> EngineResult:
    """Presidio's anonymizer over the detector's ``findings`` in ``text`` (invisible characters dropped); overlapping
    findings are trimmed so that their union is replaced."""
    operators = {
        entity: OperatorConfig("custom", {"lambda": lambda value, p=placeholder: replace(p, value)})
        for entity, placeholder in PLACEHOLDERS.items()
    }
    return _anonymizer().anonymize(text, findings, operators, ConflictResolutionStrategy.REMOVE_INTERSECTIONS)


def _anonymized_all(texts: Sequence[str], replace: Callable[[str, str], str]) -> list[EngineResult]:
    """:func:`_anonymize` of each text, invisible characters dropped, the detector run over them in batches
    (:func:`core.pii.analyze_all`)."""
    visible = [_INVISIBLE.sub("", text) for text in texts]
    findings = analyze_all([_analysed(text) for text in visible])
    return [_anonymize(text, found, replace) for text, found in zip(visible, findings, strict=True)]


def _placeholder(placeholder: str, _value: str) -> str:
    return placeholder


def redact(text: str) -> str:
    """``text`` with each personal-data value replaced by its kind's placeholder (``<PERSON>``, ``<EMAIL>``, …)."""
    return substitute(text, _placeholder)


def redact_all(texts: Sequence[str]) -> list[str]:
    """:func:`redact` of each text, the detector run over them in batches.

    >>> redact_all(["mail ann@example.org", "", "no personal data here"])
    ['mail <EMAIL>', '', 'no personal data here']
    """
    return [result.text for result in _anonymized_all(texts, _placeholder)]


def count_pii(text: str) -> int:
    """How many personal-data values :func:`redact` would mask, invisible characters ignored.

    >>> count_pii("call +1 415 555 0100 or Ann Lee"), count_pii("butter\u200b83747847473")
    (2, 0)
    """
    return count_pii_all([text])[0]


def count_pii_all(texts: Sequence[str]) -> list[int]:
    """:func:`count_pii` of each text, the detector run over them in batches.

    >>> count_pii_all(["mail ann@example.org", "", "no personal data here"])
    [1, 0, 0]
    """
    return [len(result.items) for result in _anonymized_all(texts, _placeholder)]


def substitute(text: str, replace: Callable[[str, str], str]) -> str:
    """``text`` with each personal-data value replaced by ``replace(placeholder, value)``; invisible characters are
    dropped first, and what ``replace`` returns is not scanned again.

    >>> substitute("mail ann@exa\u200bmple.org", lambda placeholder, value: f"{placeholder}={value.upper()}")
    'mail <EMAIL>=ANN@EXAMPLE.ORG'
    """
    return _anonymized_all([text], replace)[0].text
