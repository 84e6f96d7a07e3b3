"""Pattern search over text at a bounded cost: only a bounded part of a text is read (its start; the injection
signals read further), and a regex runs only on text that holds one of its prefilter words.

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
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass

from ahocorasick_rs import AhoCorasick

SCAN_CHARS = 4000
"""Pattern-based features read at most this many characters of a text (its start): bounded cost per event. The
injection signals read further (:data:`INJECTION_CHARS`)."""
INJECTION_CHARS = 32_000
"""Characters of a prompt that the injection signals read (:func:`core.risk.injection_signals`), a longer prompt's
first three quarters of them and its last quarter: more than :data:`SCAN_CHARS`, since an attacker picks where a
payload sits, and a document put in a prompt is long (the 1.8% of ShareGPT prompts over 4,000 characters take
about 0.5 ms more each)."""

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


@dataclass(frozen=True, eq=False)
class Rule:
    """A regex with its prefilter words (lowercase; every match holds one). An anchored rule's matches start where
    one of its words does: it is tried only there (``match`` at each start), not over the whole text."""

    words: frozenset[str]
    pattern: re.Pattern[str]
    anchored: bool = True
    also: tuple[frozenset[str], ...] = ()
    """Groups of lowercase words: every match holds one word of each group as well, so a text that lacks a group is
    not tried, however often it holds :attr:`words`."""
    reach: int | None = None
    """For an anchored rule with :attr:`also` groups: a word of each starts at most this many characters past a
    match's start, so only the starts with one of each that near are tried."""

    @classmethod
    def of(
        cls,
        words: Iterable[str],
        pattern: str,
        anchored: bool = True,
        also: Iterable[Iterable[str]] = (),
        reach: int | None = None,
    ) -> Rule:
        """A rule of ``pattern`` compiled case-insensitive, ``.`` matching newlines too."""
        compiled = re.compile(pattern, re.IGNORECASE | re.DOTALL)
        return cls(frozenset(words), compiled, anchored, tuple(frozenset(group) for group in also), reach)

    def found(self, text: str, starts: list[int]) -> bool:
        """Whether the rule matches ``text``, whose case fold holds one of its words at each of ``starts``."""
        if not self.anchored:
            return self.pattern.search(text) is not None
        return any(self.pattern.match(text, start) for start in starts)


class RuleIndex:
    """The prefilter words of many rules, all found in one pass over a folded text (Aho-Corasick, in Rust): a
    text's cost no longer grows with the number of words, and a rule runs only where its words occur.

    >>> rule = Rule(frozenset({"act"}), re.compile(r"\\bact as\\b", re.IGNORECASE))
    >>> index, text = RuleIndex([rule]), "Exactly. Now ACT AS a pirate"
    >>> starts = index.starts(fold(text))
    >>> starts[rule], rule.found(text, starts[rule])
    ([2, 13], True)
    """

    def __init__(self, rules: Iterable[Rule]) -> None:
        rules = list(rules)
        words = sorted({word for rule in rules for group in (rule.words, *rule.also) for word in group})
        self._automaton = AhoCorasick(words)
        self._rules = [tuple(rule for rule in rules if word in rule.words) for word in words]
        index = {word: i for i, word in enumerate(words)}
        self._also = {rule: [[index[word] for word in group] for group in rule.also] for rule in rules if rule.also}

    def starts(self, folded: str) -> dict[Rule, list[int]]:
        """Where the words of each rule that ``folded`` holds start in it (``fold`` keeps a text's length); for a
        rule with :attr:`Rule.also` groups, only if ``folded`` holds a word of each too (within :attr:`Rule.reach`
        past the start, when it has one)."""
        starts: dict[Rule, list[int]] = {}
        found: dict[int, list[int]] = {}
        for i, start, _ in self._automaton.find_matches_as_indexes(folded, overlapping=True):
            found.setdefault(i, []).append(start)
            for rule in self._rules[i]:
                starts.setdefault(rule, []).append(start)
        for rule, groups in self._also.items():
            if rule not in starts:
                continue
            held = [sorted(at for i in group for at in found.get(i, ())) for group in groups]
            reach = rule.reach
            kept = [at for at in starts[rule] if reach is None or all(_near(group, at, reach) for group in held)]
            if all(held) and kept:
                starts[rule] = kept
            else:
                del starts[rule]
        return starts


def _near(positions: list[int], start: int, reach: int) -> bool:
    """Whether one of the sorted ``positions`` lies in ``[start, start + reach]``."""
    i = bisect_left(positions, start)
    return i < len(positions) and positions[i] <= start + reach
