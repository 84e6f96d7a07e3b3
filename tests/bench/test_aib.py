from bench.aib import aib_prompts


def test_each_attack_is_its_task_then_the_content_that_carries_it() -> None:
    prompts = aib_prompts()
    assert len(prompts) == 21, "24 rows, 3 of them controls"
    assert all("\n\n" in prompt for prompt in prompts)
    assert not any("DONE-A1" in prompt for prompt in prompts), "the controls are left out"
    assert "Summarise the article at https://example.com/pricing.\n\nPricing starts at $10/mo." in prompts[0]
