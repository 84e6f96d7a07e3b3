"""A cheap count of personal-data values for a per-event feature: a few regular expressions with prefilters.

It is not the detector (:mod:`core.pii` is, for every redaction and every PII check): at about 13 µs an event it
stays cheap enough to run on every event, which Presidio (about 7 ms a prompt) is not. It counts e-mail addresses,
some API keys, card numbers (Luhn-checked), phone numbers and IPv4 addresses.

>>> estimate_pii("mail me at ann@example.org or call +1 415 555 0100")
2
"""

from __future__ import annotations

import re


def luhn_valid(number: str) -> bool:
    """The Luhn checksum every payment card number passes (about 1 in 10 random digit runs do too).

    >>> luhn_valid("4111 1111 1111 1111"), luhn_valid("4111 1111 1111 1112")
    (True, False)
    """
    digits = [int(c) for c in reversed(number) if c.isdigit()]
    return sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(digits)) % 10 == 0


# The numeric patterns begin with their first character's class, the word boundary before it checked just after
# (a look-behind over the boundary and that character): the regex engine then skips to the next digit in C
# instead of trying every position of the text (IP 5x, card 2x, phone 2.3x faster on prompts with nine digits or
# more; the same matches as ``\b\d…`` and ``(?<!\w)\+?\d…``).
_CARD = re.compile(r"\d(?<!\w\d)(?:[ -]?\d){12,15}\b")  # 13 to 16 digits; a separator after them is kept
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("<EMAIL>", re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")),
    ("<API_KEY>", re.compile(r"\b(sk|pk|ghp|xox[bp])[-_][A-Za-z0-9_-]{16,}\b")),
    ("<CARD>", _CARD),
    (
        "<PHONE>",
        re.compile(
            r"[+\d](?<!\w[+\d])(?:(?<=\+)\d{1,3}|(?<=\d)\d{0,2})[ .-]?\(?\d{2,4}\)?[ .-]?\d{3}[ .-]?\d{3,4}(?!\w)"
        ),
    ),
    ("<IP>", re.compile(r"\d(?<!\w\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}\b")),
]
_CLUES: dict[str, tuple[tuple[str, ...], int]] = {
    # placeholder: (strings one of which every match holds, or none; the fewest digits a match holds)
    "<EMAIL>": (("@",), 0),
    "<API_KEY>": (("sk-", "sk_", "pk-", "pk_", "ghp-", "ghp_", "xoxb-", "xoxb_", "xoxp-", "xoxp_"), 0),
    "<CARD>": ((), 13),
    "<PHONE>": ((), 9),
    "<IP>": ((".",), 4),
}
"""What a text must hold for each pattern to match: cheap tests that spare most text the patterns."""
_DIGIT = re.compile(r"\d")  # the patterns' digits: any Unicode decimal digit
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")


def _matches(pattern: re.Pattern[str], text: str) -> list[re.Match[str]]:
    """The values ``pattern`` finds; digit runs count as cards only when they pass the Luhn check."""
    found = list(pattern.finditer(text))
    return [m for m in found if luhn_valid(m.group())] if pattern is _CARD else found


def estimate_pii(text: str) -> int:
    """How many personal-data values the patterns find, invisible characters ignored.

    >>> estimate_pii("call +1 415 555 0100"), estimate_pii("butter\u200b83747847473")
    (1, 0)
    """
    if not text.isascii():  # the invisible characters are not ASCII
        text = _INVISIBLE.sub("", text)
    digits = len(_DIGIT.findall(text))
    count = 0
    for placeholder, pattern in _PATTERNS:
        strings, fewest_digits = _CLUES[placeholder]
        if digits >= fewest_digits and (not strings or any(s in text for s in strings)):
            count += len(_matches(pattern, text))
    return count
