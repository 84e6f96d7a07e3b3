import re
import socket

import pytest

from bench.pii import labelled_texts
from core import pii
from core.pii import PLACEHOLDERS
from core.pii_estimate import _INVISIBLE, _PATTERNS, _matches, estimate_pii
from core.redact import count_pii, count_pii_all, redact, redact_all, substitute
from devtools.traffic import jailbreak_prompts, sharegpt_pairs


def count_every_pattern(text: str) -> int:
    """estimate_pii without its prefilters: every pattern runs."""
    text = _INVISIBLE.sub("", text)
    return sum(len(_matches(pattern, text)) for _, pattern in _PATTERNS)


TRAPS = [
    "mail ann@example.org, key sk-abcdefghijklmnopqrstuv, card 4111 1111 1111 1111, call +1 415 555 0100",
    "server 10.0.0.1 and 192.168.1.254",
    "card ٤١١١١١١١١١١١١١١١ in Arabic-Indic digits, phone ١٢٣ ٤٥٦ ٧٨٩٠",
    "split by invisibles: 4111\u200b1111\u200b1111\u200b1111 and ann@exa\u200bmple.org",
    "12 345 678",  # too few digits for a phone or a card
    "1.2.3",  # too few digits for an IP
]
PERSONAL = {
    # what the issue found surviving the old patterns, each in a sentence of its own
    "<PERSON>": "Please forward this to Maria Gonzalez before Friday.",
    "<API_KEY>": "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    "<SECRET>": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "<SSN>": "the number 536-22-8726 was rejected",
    "<IBAN>": "send it to GB82 WEST 1234 5698 7654 32 today",
    "<PHONE>": "Ruf mich unter +49 30 12345678 an",
    "<IP>": "the host 2001:db8:85a3::8a2e:370:7334 is down",
    "<ADDRESS>": "I live at 742 Evergreen Terrace, Springfield, IL 62704.",
}
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
CREDENTIALS = [  # (text, the secret in it)
    (f"Authorization: Bearer {JWT}", JWT),
    ("db password=hunter2!x and then", "hunter2!x"),
    ("GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    (
        "SLACK_BOT_TOKEN=xoxb-123456789012-1234567890123-abcdefghijABCDEFGHIJklmn",
        "xoxb-123456789012-1234567890123-abcdefghijABCDEFGHIJklmn",
    ),
    ("OpenAI(api_key='sk-proj-abcdefghijklmnopqrstuvwxyz0123456789')", "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1c7+abcdefgh\nxyz==\n-----END RSA PRIVATE KEY-----",
        "MIIEpAIBAAKCAQEA",
    ),
]


def test_prefilters_never_hide_a_match() -> None:
    texts = [*jailbreak_prompts(), *(text for pair in sharegpt_pairs()[:3000] for text in pair), *TRAPS]
    assert all(estimate_pii(text) == count_every_pattern(text) for text in texts)
    assert [estimate_pii(text) for text in TRAPS] == [4, 2, 2, 2, 0, 0]


BOUNDARY_FIRST = {  # the numeric patterns as first written, the boundary before the first digit
    "<CARD>": r"\b\d(?:[ -]?\d){12,15}\b",
    "<PHONE>": r"(?<!\w)\+?\d{1,3}[ .-]?\(?\d{2,4}\)?[ .-]?\d{3}[ .-]?\d{3,4}(?!\w)",
    "<IP>": r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
}
BOUNDARY_TRAPS = [
    "+14155550100 a+14155550100 ++1 415 555 0100 (415) 555-0100 x+1 415 555 0100",
    "10.0.0.1 x10.0.0.1 10.0.0.1x 1.10.0.0.1 _10.0.0.1",
    "4111111111111111 _4111111111111111 a4111 1111 1111 1111 4111-1111-1111-1111-",
]


def test_numeric_patterns_match_where_their_boundary_first_forms_do() -> None:
    """They open on their first character's class (the regex engine skips to a digit) and find the same values."""
    patterns = dict(_PATTERNS)
    texts = [*(text for pair in sharegpt_pairs()[:3000] for text in pair), *TRAPS, *BOUNDARY_TRAPS]
    for placeholder, written in BOUNDARY_FIRST.items():
        first = re.compile(written)
        spans = [[m.span() for m in first.finditer(text)] for text in texts]
        assert [[m.span() for m in patterns[placeholder].finditer(text)] for text in texts] == spans, placeholder
        assert sum(map(len, spans[-len(BOUNDARY_TRAPS) :])) >= 2, placeholder


def test_redact_masks_what_count_pii_counts() -> None:
    assert redact(TRAPS[0]) == "mail <EMAIL>, key <API_KEY>, card <CARD>, call <PHONE>"
    assert [count_pii(text) for text in TRAPS] == [4, 2, 2, 2, 0, 0]
    placeholders = re.compile("|".join(map(re.escape, PLACEHOLDERS.values())))
    for text in [
        *TRAPS,
        *PERSONAL.values(),
        *(text for text, _ in CREDENTIALS),
        *(p[:1000] for p, _ in sharegpt_pairs()[:60]),
    ]:
        assert count_pii(text) == len(placeholders.findall(redact(text))), text


@pytest.mark.parametrize("placeholder", list(PERSONAL))
def test_each_kind_the_issue_found_is_redacted(placeholder: str) -> None:
    text = PERSONAL[placeholder]
    assert placeholder in redact(text)
    assert not any(
        value in redact(text) for value in re.findall(r"[\w@:/+.-]{6,}", text) if any(c.isdigit() for c in value)
    )


@pytest.mark.parametrize(("text", "secret"), CREDENTIALS)
def test_credentials_are_redacted_whole(text: str, secret: str) -> None:
    redacted = redact(text)
    assert "<API_KEY>" in redacted or "<SECRET>" in redacted
    assert not any(part in redacted for part in re.split(r"[-_.=]", secret) if len(part) >= 4)


def test_hex_payloads_versions_and_dates_are_left_alone() -> None:
    text = "payload deadbeef4111111111111111cafe, 0x4111111111111111, sha 4111111111111111a, python 3.11.2, 2023-01-05"
    assert redact(text) == text


def test_substitute_hands_each_value_to_replace_once() -> None:
    seen: list[tuple[str, str]] = []
    out = substitute("Maria Gonzalez: maria@corp.com", lambda p, v: seen.append((p, v)) or p.lower())
    assert out == "<person>: <email>"
    assert sorted(seen) == [("<EMAIL>", "maria@corp.com"), ("<PERSON>", "Maria Gonzalez")]


def test_the_detector_never_reaches_for_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    pii.analyzer.cache_clear()
    monkeypatch.setattr(pii, "OFFLINE_SUFFIXES", type(pii.OFFLINE_SUFFIXES)(suffix_list_urls=(), cache_dir=None))
    assert redact("write to ann@corp.example.co.uk") == "write to <EMAIL>"
    assert attempts == []


@pytest.mark.parametrize("run", ["[" * 50_000 + "]" * 50_000, "])" * 20_000, "_" * 20_000, "(" * 20_000])
def test_runs_of_symbols_are_kept_and_values_beside_them_masked(run: str) -> None:
    """Deeply nested JSON, ASCII art, separators: spaCy's tokenizer took minutes over 20,000 of these in a row."""
    assert redact(f"{run} mail ann@example.org {run}") == f"{run} mail <EMAIL> {run}"
    assert redact(f"ann@example.org{run}") == f"<EMAIL>{run}"


def test_batched_detection_finds_what_one_text_at_a_time_finds() -> None:
    """analyze_all runs spaCy over batches (padded together): the same findings as Presidio's analyzer given each
    text alone, on texts with planted values of every kind (four languages), real prompts cut as evidence keeps them,
    jailbreaks and the traps, with blanks among them; and count_pii_all counts as count_pii does."""
    texts = [t.text for t in labelled_texts(60, seed=3)] + [p[:1000] for p, _ in sharegpt_pairs(40)]
    texts += [*jailbreak_prompts()[:20], *TRAPS, "", "   \n", *PERSONAL.values()]
    batched = pii.analyze_all(texts)
    alone = [pii.analyzer().analyze(text, language="en", entities=list(PLACEHOLDERS)) for text in texts]

    def spans(found: list) -> list[tuple[str, int, int, float]]:
        return sorted((r.entity_type, r.start, r.end, round(r.score, 6)) for r in found)

    assert [spans(found) for found in batched] == [spans(found) for found in alone]
    assert sum(map(len, batched)) > len(texts)  # the texts do carry personal data
    assert count_pii_all(texts) == [count_pii(text) for text in texts]
    assert redact_all(texts) == [redact(text) for text in texts]
