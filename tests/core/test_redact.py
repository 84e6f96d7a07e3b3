from core.redact import _INVISIBLE, _PATTERNS, _matches, count_pii, redact
from devtools.traffic import jailbreak_prompts, sharegpt_pairs


def count_every_pattern(text: str) -> int:
    """count_pii without its prefilters: every pattern runs."""
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


def test_prefilters_never_hide_a_match() -> None:
    texts = [*jailbreak_prompts(), *(text for pair in sharegpt_pairs()[:3000] for text in pair), *TRAPS]
    assert all(count_pii(text) == count_every_pattern(text) for text in texts)
    assert [count_pii(text) for text in TRAPS] == [4, 2, 2, 2, 0, 0]


def test_redact_masks_what_count_pii_counts() -> None:
    assert redact(TRAPS[0]) == "mail <EMAIL>, key <API_KEY>, card <CARD>, call <PHONE>"
