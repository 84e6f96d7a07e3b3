import re

from core.refusal import _REFUSAL, is_refusal
from core.risk import _DECODE_CUE, _EXFILTRATION_FAMILIES, _INDIRECT_FAMILIES, _INJECTION_FAMILIES, _WORDS, _count
from core.scan import SCAN_CHARS, fold
from devtools.traffic import jailbreak_prompts, sharegpt_pairs
from tests.factories import CASE_TRAPS


def test_pattern_prefilters_never_hide_a_match() -> None:
    """The word prefilters only spare patterns work: every score is what the patterns alone give."""
    texts = [*jailbreak_prompts(), *(text for pair in sharegpt_pairs()[:2000] for text in pair), *CASE_TRAPS]
    for text in texts:
        head = text[:SCAN_CHARS]
        present = _WORDS.present(fold(head))
        for families in (_INJECTION_FAMILIES, _INDIRECT_FAMILIES, _EXFILTRATION_FAMILIES, _DECODE_CUE):
            unfiltered = sum(any(p.search(head) for _, p in family) for family in families)
            assert _count(families, head, present) == unfiltered
        assert is_refusal(text) == bool(_REFUSAL.search(text[:600]))
    assert _count(_INJECTION_FAMILIES, CASE_TRAPS[0], _WORDS.present(fold(CASE_TRAPS[0]))) and is_refusal(CASE_TRAPS[3])


def test_fold_reads_every_case_variant_of_an_ascii_letter_as_that_letter() -> None:
    """What an ``re.IGNORECASE`` pattern matches for an ASCII letter, ``fold`` turns into that letter."""
    every_char = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    for letter in "abcdefghijklmnopqrstuvwxyz":
        variants = re.compile(letter, re.IGNORECASE).findall(every_char)
        assert [fold(variant) for variant in variants] == [letter] * len(variants), letter
