"""Indirect prompt injections from AgentDojo (``agentdojo`` on PyPI, MIT), read from its files without importing it
(its dependencies are LLM clients that neither training the learned injection score nor its benchmark needs).

AgentDojo plants an attack (``agentdojo/attacks/*.py``: its templates with a ``{goal}`` slot) carrying an injection
task's goal (``default_suites/v1/<suite>/injection_tasks.py``) into the content a tool returns: the slots of the
suite's environment (``data/suites/<suite>/*.yaml``) that its ``injection_vectors.yaml`` names, other slots at their
defaults, in answer to a user task (``user_tasks.py``). A prompt here is a user task followed by the environment
line that holds the attack, as a gateway logs a conversation whose tool message carries it.
"""

from __future__ import annotations

import ast
import random
import re
from pathlib import Path

import yaml

from core.package_data import package_file

SUITES = ("banking", "slack", "travel", "workspace")
USER, MODEL = "Emma Johnson", "the AI language model"
"""The names AgentDojo's attacks sign with (its defaults)."""
_SLOT = re.compile(r"\{(\w+)\}")


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level string constants (``_RECIPIENT = "..."``)."""
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def _string(node: ast.expr, names: dict[str, str]) -> str | None:
    """The value of a string literal or f-string over ``names``, else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.Name):
                if value.value.id not in names:
                    return None
                parts.append(names[value.value.id])
            else:
                return None
        return "".join(parts)
    return None


def _class_strings(path: Path, attribute: str) -> list[str]:
    """The string value of ``attribute`` in each class of ``path`` (class constants, then module constants)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = _constants(tree)
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        names = dict(module)
        for statement in node.body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target = statement.targets[0]
                if isinstance(target, ast.Name) and (value := _string(statement.value, names)) is not None:
                    names[target.id] = value
        if attribute in names:
            found.append(names[attribute])
    return found


def attack_templates(root: Path) -> list[str]:
    """Every string literal with a ``{goal}`` slot in AgentDojo's attacks, signed with its default names."""
    templates = []
    for path in sorted((root / "attacks").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if id(node) in docstrings:
                continue
            value = node.value if isinstance(node, ast.Constant) else None
            if isinstance(value, str) and "{goal}" in value and "{tools}" not in value:  # {tools}: a task's calls
                templates.append(node.value.replace("{user}", USER).replace("{model}", MODEL))
    return list(dict.fromkeys(templates))


def _tool_lines(root: Path, suite: str) -> list[str]:
    """Lines of the suite's environment (its includes too) that hold an injection slot: the first slot becomes
    ``{goal}``, any other its default text."""
    data = root / "data" / "suites" / suite
    defaults = {
        name: spec.get("default", "")
        for name, spec in yaml.safe_load((data / "injection_vectors.yaml").read_text(encoding="utf-8")).items()
    }
    lines = []
    for path in sorted(data.rglob("*.yaml")):
        if path.name == "injection_vectors.yaml":
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            slots = [slot for slot in _SLOT.findall(line) if slot in defaults]
            if slots:
                first = slots[0]
                text = _SLOT.sub(lambda m, first=first: "{goal}" if m.group(1) == first else defaults[m.group(1)], line)
                lines.append(text.strip().replace("\\n", "\n").replace("\\t", "\t"))
    return lines


def agentdojo_prompts(per_suite: int = 80, seed: int = 0) -> list[str]:
    """``per_suite`` prompts of each suite: a user task, then a tool's content carrying an attack template with an
    injection goal in one of its slots."""
    root = package_file("agentdojo", "")
    rng = random.Random(seed)
    templates = attack_templates(root)
    prompts = []
    for suite in SUITES:
        tasks = root / "default_suites" / "v1" / suite
        goals = _class_strings(tasks / "injection_tasks.py", "GOAL")
        users = _class_strings(tasks / "user_tasks.py", "PROMPT")
        lines = _tool_lines(root, suite)
        for _ in range(per_suite):
            attack = rng.choice(templates).replace("{goal}", rng.choice(goals))
            tool = rng.choice(lines).replace("{goal}", attack)
            prompts.append(f"{rng.choice(users).strip()}\n\n{tool}")
    return prompts
