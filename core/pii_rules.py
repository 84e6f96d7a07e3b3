"""Recognizers that Presidio lacks: credentials (detect-secrets' rules plus the few it misses in prose) and street
addresses.

Credentials are two entities. ``API_KEY``: tokens with a recognisable shape, from every regex rule of detect-secrets
(AWS access key ids, GitHub, GitLab, Slack, Stripe, SendGrid, … tokens) plus JWTs and ``sk-``/``pk-`` style keys.
``SECRET``: values that only their context gives away: what follows ``password=``, ``secret:``, ``api_key=``, …, an
AWS secret access key next to its name, a private-key block. ``STREET_ADDRESS``: a street with its number (or a
postcode after it) as the US, the UK, Germany, France, Spain and Italy write them, with city and postcode when they
follow, on one line.

These recognizers match case-sensitively (Presidio's own pattern recognizers ignore case).

>>> [r.entity_type for r in credential_recognizers()[0].analyze("id AKIAIOSFODNN7EXAMPLE", ["API_KEY"])]
['API_KEY']
>>> text = "Ship it to 0487 Hopkins Squares Apt. 817, New Jamie, KS 18395."
>>> [text[r.start : r.end] for r in address_recognizer().analyze(text, ["STREET_ADDRESS"])]
['0487 Hopkins Squares Apt. 817, New Jamie, KS 18395']
"""

from __future__ import annotations

import re

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.ip_public import IPPublicDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

Rule = tuple[re.Pattern[str], float]
"""A pattern and the score of its matches; a group named ``value``, if any, is the entity."""

SKIPPED_RULES = (IPPublicDetector, JwtTokenDetector)
"""detect-secrets rules left out: IPs are personal data of their own kind; its JWT rule stops before the signature."""
TOKEN_SHAPES = [
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{10,}"), 0.9),  # a JWT, signature too
    (re.compile(r"\b(?:sk|pk|rk)[-_](?:(?:live|test|proj|ant)[-_])?[A-Za-z0-9_-]{16,}"), 0.8),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}"), 0.9),
]
KEYWORDS = (
    r"pass(?:word|wd|phrase)?|passwort|kennwort|contrase[ñn]a|clave|mot de passe|mdp|senha|wachtwoord|pwd|"
    r"secret(?:[_-]?key)?|api[_-]?key|access[_-]?token|auth[_-]?token|token"
)
CONTEXT_SECRETS = [
    (
        re.compile(
            rf"(?i)(?<![A-Za-z])(?:[A-Za-z_]*[_-])?(?:{KEYWORDS})[\"']?\s*(?:=|:|:=|=>|\bis\b|\best\b|\bist\b|\bes\b)"
            r"\s*[\"']?(?P<value>[^\s\"',;]{4,})"
        ),
        0.85,
    ),
    (
        re.compile(r"(?i)aws.{0,20}?(?:secret|key).{0,20}?[\s=:\"']+(?P<value>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"),
        0.9,
    ),
    (
        re.compile(
            r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY[A-Z ]*-----|$)"
        ),
        1.0,
    ),
]

WORD = r"[A-ZÀ-ÖØ-Þ][\w'’.-]*"
"""A capitalised word (a street's or a city's name)."""
WORDS = rf"(?:{WORD}[ \t]+|(?:de|del|de la|du|des|di|van|von|y)[ \t]+){{0,4}}{WORD}"
CITY = rf"{WORD}(?:[ \t-](?:{WORD}|sur|sous|le|la|les|de|en|am|an|der|im|upon))*"
NUMBER = r"\d{1,5}[A-Za-z]?(?:[-/]\d{1,4})?"
UNIT = r"(?:,?[ \t]+(?:Apt\.|Apartment|Suite|Unit|Piso|Puerta|Appartamento|Interno|#)[ \t]*\w+)"
US_TAIL = rf",[ \t]+{CITY},[ \t]+[A-Z]{{2}}[ \t]+\d{{5}}(?:-\d{{4}})?"
UK_TAIL = rf"(?:,[ \t]+{CITY})?,[ \t]+[A-Z]{{1,2}}\d[A-Z\d]?[ \t]?\d[A-Z]{{2}}"
EU_TAIL = rf",?[ \t]+\d{{4,5}}[ \t]+{CITY}"
ES_TAIL = rf"[ \t]*,[ \t]+{CITY},[ \t]+\d{{5}}"
TAIL = rf"(?:{US_TAIL}|{UK_TAIL}|{ES_TAIL}|{EU_TAIL})"
STREET_TYPES = (
    r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Square|Sq|Terrace|Way|Parkway|"
    r"Highway|Hwy|Circle|Trail|Crossing|Plaza|Row|Walk|Close|Crescent|Gardens|Park|Ridge|Heights|Mews|Grove|Loop"
)
TYPE_FIRST = (
    r"Calle|Avenida|Via|Viale|Vial|Pasaje|Pasadizo|Paseo|Plaza|Piazza|Piazzale|Camino|Carrer|Rambla|Ronda|Travesía|"
    r"Callejón|Cuesta|Glorieta|Alameda|Acceso|Urbanización|Cañada|Carretera|Rua|Strada|Corso|Vicolo|Largo|Contrada|"
    r"[Rr]ue|[Aa]venue|[Bb]oulevard|[Cc]hemin|[Aa]llée|[Ii]mpasse|[Pp]lace|[Qq]uai|[Cc]ours|[Rr]oute"
)
COMPOUND_STREET = (
    r"[A-ZÄÖÜ][\w-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|chaussee|steig|pfad|markt|graben|"
    r"Straße|Weg|Gasse|Platz|Allee|Ring|Damm|straat|laan|plein|gracht|kade|singel)"
)
ADDRESSES = [
    (  # 0487 Hopkins Squares Apt. 817, New Jamie, KS 18395; Flat 9, Anna Common, Julieport, E7E 0NA
        re.compile(rf"\b(?:(?:Flat|Studio|Apartment|Unit)[ \t]+\w+,[ \t]+)?(?:{NUMBER},?[ \t]+)?{WORDS}{UNIT}?{TAIL}"),
        0.7,
    ),
    (re.compile(rf"\b{NUMBER}[ \t]+{WORDS}[ \t]+(?:{STREET_TYPES})\b\.?{UNIT}?"), 0.6),  # 742 Evergreen Terrace
    (  # Calle de Ana Sancho 46 Piso 3, Jaén, 02857; 5, avenue Samson, 57583 Lacroix
        re.compile(
            rf"\b(?:{NUMBER},?[ \t]+)?(?:{TYPE_FIRST})[ \t]+{WORDS}(?:(?:[ \t]+{NUMBER}{UNIT}?)(?:{TAIL})?|{TAIL})"
        ),
        0.7,
    ),
    (re.compile(rf"\b{COMPOUND_STREET}[ \t]+{NUMBER}(?:{EU_TAIL})?"), 0.7),  # Musterstraße 12-14, 10115 Berlin
    (  # PSC 2790, Box 6196, APO AA 31053
        re.compile(r"\b(?:PSC|Unit|USNS|USNV|USS|USCGC) \w+(?:,? Box \d+)?, (?:APO|FPO|DPO) A[AEP] \d{5}"),
        0.8,
    ),
]


class RuleRecognizer(EntityRecognizer):
    """Finds ``entity`` with ``rules``, each pattern with its own flags (Presidio's pattern recognizers ignore case)."""

    def __init__(self, entity: str, name: str, rules: list[Rule]) -> None:
        self.rules = rules
        super().__init__(supported_entities=[entity], name=name)

    def load(self) -> None:
        """Nothing to load: the patterns are compiled."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """The values ``text`` holds, each once per rule that finds it."""
        entity = self.supported_entities[0]
        return [
            RecognizerResult(entity, match.start(group), match.end(group), score)
            for pattern, score in self.rules
            for group in ["value" if "value" in pattern.groupindex else 0]
            for match in pattern.finditer(text)
        ]


def detect_secrets_rules() -> list[Rule]:
    """Every regular expression of detect-secrets' regex rules."""
    detectors = [
        detector
        for detector in get_mapping_from_secret_type_to_class().values()
        if issubclass(detector, RegexBasedDetector) and not issubclass(detector, SKIPPED_RULES)
    ]
    return [(pattern, 0.9) for detector in sorted(detectors, key=lambda d: d.__name__) for pattern in detector.denylist]


def credential_recognizers() -> list[EntityRecognizer]:
    """The recognizers of ``API_KEY`` (token shapes) and ``SECRET`` (values their context names)."""
    return [
        RuleRecognizer("API_KEY", "token shapes", [*detect_secrets_rules(), *TOKEN_SHAPES]),
        RuleRecognizer("SECRET", "context secrets", CONTEXT_SECRETS),
    ]


def address_recognizer() -> EntityRecognizer:
    """Street addresses, with city and postcode when they follow."""
    return RuleRecognizer("STREET_ADDRESS", "street addresses", ADDRESSES)
