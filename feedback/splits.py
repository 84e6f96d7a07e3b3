"""The held-out split of a dataset version: about :data:`HELDOUT_SHARE` of its rows, stratified by technique and
chosen by the version's seed, kept for verifying candidates and never exported for training.

The unit drawn is a whole counterfactual tuple (``metadata["pair_id"]``), else every sample derived from one clean
prompt (``metadata["source"]``: its perturbations, the injections hidden in it), else a sample: a candidate trained
on a typo'd prompt would otherwise be verified on the same prompt in capitals. Units are stratified by technique
(a unit spanning several techniques stands in the stratum of that set); each stratum gets its share of the held-out
units by largest remainder, and within a stratum the units are ordered by a hash of the seed and their id, so the
same rows and seed always give the same split.

>>> from generators.samples import Expected, Sample
>>> rows = [Sample.make(f"q{i}", "typos" if i % 2 else "casing", Expected.ANSWER, "", "g", "0") for i in range(20)]
>>> train, heldout = split(rows, seed="0")
>>> len(train), len(heldout), sorted({s.technique for s in heldout})
(17, 3, ['casing', 'typos'])
>>> split(rows, seed="0") == (train, heldout), split(rows, seed="1")[1] != heldout
(True, True)
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence

from generators.samples import Sample

HELDOUT_SHARE = 0.15


def unit(sample: Sample) -> str:
    """The id of what is held out together: a counterfactual tuple, else the clean prompt's family, else the
    sample."""
    return sample.metadata.get("pair_id") or sample.metadata.get("source") or sample.id


def split(samples: Sequence[Sample], seed: str, share: float = HELDOUT_SHARE) -> tuple[list[Sample], list[Sample]]:
    """(rest, held-out) of ``samples``, each in input order."""
    if not 0 <= share < 1:
        raise ValueError(f"the held-out share must be in [0, 1), got {share}")
    techniques: dict[str, set[str]] = defaultdict(set)
    for sample in samples:
        techniques[unit(sample)].add(sample.technique)
    strata: dict[str, list[str]] = defaultdict(list)
    for key, spanned in techniques.items():
        strata["+".join(sorted(spanned))].append(key)
    units = sum(len(keys) for keys in strata.values())
    exact = {technique: share * len(keys) for technique, keys in strata.items()}
    counts = {technique: int(value) for technique, value in exact.items()}
    by_remainder = sorted(strata, key=lambda t: (counts[t] - exact[t], _rank(seed, t)))
    for technique in by_remainder[: round(share * units) - sum(counts.values())]:
        counts[technique] += 1
    held = {
        key
        for technique, keys in strata.items()
        for key in sorted(keys, key=lambda k: _rank(seed, k))[: counts[technique]]
    }
    return [s for s in samples if unit(s) not in held], [s for s in samples if unit(s) in held]


def _rank(seed: str, key: str) -> str:
    return hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()
