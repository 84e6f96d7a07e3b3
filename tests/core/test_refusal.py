from core.refusal import is_refusal


def test_refusals_are_recognised() -> None:
    assert is_refusal("I'm sorry, but I can't help with that.")
    assert is_refusal("As an AI language model, I cannot browse the internet.")
    assert not is_refusal("Sure! Here is a list of sorting algorithms.")
