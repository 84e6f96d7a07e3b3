"""Indirect prompt injections from agent-injection-bench (``agent-injection-bench`` on PyPI, MIT), read from its data
file without importing it.

Each of its attacks (``aib/data/attacks.jsonl``) is a user's task and the content an agent reads for it (a page, a
document, a tool's result) with an instruction planted in it, across families: instruction override, context
termination, authority claims, exfiltration, tool redirection, encoding, role play and conversation hijack. A
prompt here is the task followed by that content, as a gateway logs the conversation; its ``control`` rows (benign
content, no attack) are left out.
"""

from __future__ import annotations

import json

from core.package_data import package_file


def aib_prompts() -> list[str]:
    """Every attack of agent-injection-bench as a prompt: its task, a blank line, then the injected content."""
    rows = [
        json.loads(line)
        for line in package_file("aib", "data/attacks.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return [f"{row['task']}\n\n{row['injected']}" for row in rows if row["family"] != "control"]
