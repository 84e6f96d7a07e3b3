"""Pattern search over text at a bounded cost: only a text's start is read, and a regex runs only on text that
holds one of its prefilter words.

Each pattern comes with lowercase words one of which every match holds: the pattern runs only on text whose
case fold (:func:`fold`) holds one of them, and most text holds none.

>>> import re
>>> url = re.compile(r"\\bhttps?://", re.IGNORECASE)
>>> text = "see HTTPS://example.org"
>>> matches(("http",), url, text, fold(text)), matches(("http",), url, "no address", "no address")
(True, False)
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ahocorasick_rs import AhoCorasick

SCAN_CHARS = 4000
"""Pattern-based features read at most this many characters of a text (its start): bounded cost per event."""

_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s"})


def fold(text: str) -> str:
    """``text`` lowercased so that what an ``re.IGNORECASE`` pattern of ASCII letters matches reads as those letters:
    besides ``str.lower``, İ and ı become i and ſ becomes s (the regex engine's other case pairs of ASCII letters).

    >>> fold("İGNORE ſystem ıt")
    'ignore system it'
    """
    if not text.isascii() and ("\u0130" in text or "\u0131" in text or "\u017f" in text):
        text = text.translate(_FOLD)
    return text.lower()


def matches(words: tuple[str, ...], pattern: re.Pattern[str], text: str, folded: str) -> bool:
    """Whether ``pattern`` matches ``text``; it runs only when ``folded`` (``fold(text)``) holds one of ``words``."""
    for word in words:
        if word in folded:
            return pattern.search(text) is not None
    return False


class WordIndex:
    """The prefilter words of many patterns, all found in one pass over a folded text (Aho-Corasick, in Rust): a
    text's cost no longer grows with the number of words.

    >>> index = WordIndex(["ignore", "act", "no "])
    >>> sorted(index.present(fold("Ignore it, no ACT")))
    ['act', 'ignore', 'no ']
    """

    def __init__(self, words: Iterable[str]) -> None:
        self.words = sorted(set(words))
        self._automaton = AhoCorasick(self.words)

    def present(self, folded: str) -> set[str]:
        """The words that ``folded`` holds."""
        return {self.words[i] for i, _, _ in self._automaton.find_matches_as_indexes(folded, overlapping=True)}
