from core.spikee import DELIMITER, _inserted, spikee_prompts


def test_prompts_are_a_seeded_sample_of_document_tasks() -> None:
    prompts = spikee_prompts(50, seed=1)
    assert prompts == spikee_prompts(50, seed=1) and prompts != spikee_prompts(50, seed=2)
    assert len(set(prompts)) == 50
    assert all(p.startswith(("Summarize the following document:\n", "Given this document:\n")) for p in prompts)
    assert len(spikee_prompts(10**6)) > 1000, "every combination of the seed folders"


def test_the_payload_goes_at_the_placeholder_or_the_position() -> None:
    document = "one two three four"
    assert _inserted(document, "P", "start", "") == DELIMITER.replace("INJECTION_PAYLOAD", "P") + document
    assert _inserted(document, "P", "end", "").startswith(document)
    assert _inserted(document, "P", "middle", "") == "one two\nP\n three four"
    assert _inserted("a [HERE] b", "P", "end", "[HERE]") == "a \nP\n b"
