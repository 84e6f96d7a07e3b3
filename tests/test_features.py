from statistics import mean

from driftloop.traffic import jailbreak_prompts, sharegpt_pairs
from monitor.features import estimate_tokens, injection_score, is_refusal


def test_injection_score_separates_real_jailbreaks_from_real_chat() -> None:
    attacks = [injection_score(p) for p in jailbreak_prompts()]
    chat = [injection_score(p) for p, _ in sharegpt_pairs()[:3000]]
    assert mean(attacks) > 10 * mean(chat)
    assert sum(s > 0 for s in attacks) / len(attacks) > 0.6
    assert sum(s > 0 for s in chat) / len(chat) < 0.05


def test_refusals_are_recognised() -> None:
    assert is_refusal("I'm sorry, but I can't help with that.")
    assert is_refusal("As an AI language model, I cannot browse the internet.")
    assert not is_refusal("Sure! Here is a list of sorting algorithms.")


def test_token_estimate_grows_with_text() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd" * 10) == 10
