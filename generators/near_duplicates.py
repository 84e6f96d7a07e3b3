"""Near-duplicate texts by MinHash LSH over word shingles (``datasketch``)."""

from __future__ import annotations

import re

from datasketch import MinHash, MinHashLSH

NUM_PERM = 128
SHINGLE_WORDS = 3


def shingles(text: str, size: int = SHINGLE_WORDS) -> set[str]:
    """Lower-cased word ``size``-grams of ``text`` (the whole text when it is shorter).

    >>> sorted(shingles("Sort a  Python list", 3))
    ['a python list', 'sort a python']
    """
    words = re.findall(r"\w+|[^\w\s]", text.lower())
    return {" ".join(words[i : i + size]) for i in range(max(len(words) - size + 1, 1))}


def minhash(technique: str, text: str) -> MinHash:
    """A signature of ``text``'s shingles, each tagged with ``technique`` so that techniques never match."""
    signature = MinHash(num_perm=NUM_PERM, seed=1)
    signature.update_batch([f"{technique}\0{s}".encode() for s in shingles(text)])
    return signature


class NearDuplicates:
    """A MinHash LSH index of (technique, text); ``match`` names an indexed text of the same technique whose
    estimated Jaccard is at least ``threshold``.

    >>> index = NearDuplicates(0.8)
    >>> index.add("v1", "typos", "How do I merge two dictionaries in Python quickly and safely?")
    >>> index.match("typos", "how do I merge two dictionaries in Python quickly and safely ?")
    'v1'
    >>> index.match("casing", "how do I merge two dictionaries in Python quickly and safely ?") is None
    True
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self.signatures: dict[str, MinHash] = {}

    def add(self, key: str, technique: str, text: str) -> None:
        if key not in self.signatures:
            self.signatures[key] = minhash(technique, text)
            self.lsh.insert(key, self.signatures[key])

    def match(self, technique: str, text: str) -> str | None:
        signature = minhash(technique, text)
        candidates = sorted(self.lsh.query(signature))
        return next((k for k in candidates if signature.jaccard(self.signatures[k]) >= self.threshold), None)
