"""Masks personal data in evidence before it leaves the monitor.

>>> redact("mail me at ann@example.org or call +1 415 555 0100")
'mail me at <EMAIL> or call <PHONE>'
"""

from __future__ import annotations

import re

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("<EMAIL>", re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")),
    ("<API_KEY>", re.compile(r"\b(sk|pk|ghp|xox[bp])[-_][A-Za-z0-9_-]{16,}\b")),
    ("<CARD>", re.compile(r"\b(?:\d[ -]?){13,16}\b")),
    ("<PHONE>", re.compile(r"(?<!\w)\+?\d{1,3}[ .-]?\(?\d{2,4}\)?[ .-]?\d{3}[ .-]?\d{3,4}(?!\w)")),
    ("<IP>", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")),
]


_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")


def redact(text: str) -> str:
    """``text`` with e-mail addresses, API keys, card and phone numbers and IPs masked."""
    for placeholder, pattern in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text


def count_pii(text: str) -> int:
    """How many personal-data values :func:`redact` would mask, invisible characters ignored.

    >>> count_pii("call +1 415 555 0100"), count_pii("butter\u200b83747847473")
    (1, 0)
    """
    text = _INVISIBLE.sub("", text)
    return sum(len(pattern.findall(text)) for _, pattern in _PATTERNS)
