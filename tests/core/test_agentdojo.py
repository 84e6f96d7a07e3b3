from core.agentdojo import MODEL, SUITES, USER, agentdojo_prompts, attack_templates
from core.package_data import package_file


def test_every_template_has_a_goal_slot_and_is_signed_with_the_default_names() -> None:
    templates = attack_templates(package_file("agentdojo", ""))
    assert templates and all("{goal}" in template and "{user}" not in template for template in templates)
    assert any(USER in template or MODEL in template for template in templates)


def test_prompts_are_a_user_task_then_tool_content_carrying_a_filled_attack() -> None:
    prompts = agentdojo_prompts(per_suite=5, seed=1)
    assert len(prompts) == 5 * len(SUITES) and prompts == agentdojo_prompts(per_suite=5, seed=1)
    assert prompts != agentdojo_prompts(per_suite=5, seed=2)
    for prompt in prompts:
        task, _, tool = prompt.partition("\n\n")
        assert task and tool and "{goal}" not in prompt, "every slot filled"
