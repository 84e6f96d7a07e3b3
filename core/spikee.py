"""Indirect prompt injections from Spikee (``spikee`` on PyPI, WithSecure Labs, Apache-2.0), read from its seed
files without importing it.

Spikee builds an attack from three seed files of a folder (``spikee/data/workspace/datasets/seeds-*``): a jailbreak
(``jailbreaks.jsonl``: a template with an ``<INSTRUCTION>`` slot), an instruction (``instructions.jsonl``: the goal,
e.g. data exfiltration or a system-prompt leak) and a document (``base_user_inputs.jsonl``: an e-mail or a page)
that the payload is inserted into: at the document's ``placeholder`` when it has one, else at its start, middle or
end, inside Spikee's default delimiter (a line of its own). Its ``full-prompt`` format asks for a summary of the
document or an answer to the document's question. :func:`spikee_prompts` rebuilds those prompts the same way, in
English (Spikee's default matches a jailbreak's and an instruction's languages; here both are English).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from core.package_data import package_file

SEED_FOLDERS = ("seeds-cybersec-2026-01", "seeds-llm-mailbox", "seeds-sysmsg-extraction-2025-04")
"""The seed folders of injection attacks on a document (not the topical-advice or jailbreak-only ones)."""
POSITIONS = ("start", "middle", "end")
DELIMITER = "\nINJECTION_PAYLOAD\n"
"""Spikee's default injection delimiter."""


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _english(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row.get("lang", "en") == "en"]


def _inserted(document: str, payload: str, position: str, placeholder: str) -> str:
    """Spikee's ``insert_jailbreak``: at the placeholder, else at ``position`` (the middle: the nearest space)."""
    injected = DELIMITER.replace("INJECTION_PAYLOAD", payload)
    if placeholder:
        return document.replace(placeholder, injected)
    if position == "start":
        return injected + document
    if position == "end":
        return document + injected
    middle = len(document) // 2
    spaces = [i for i, c in enumerate(document) if c.isspace()]
    cut = min(spaces, key=lambda i: abs(i - middle)) if spaces else middle
    return document[:cut] + injected + document[cut:]


def _task(document: str, question: str, summary: bool) -> str:
    """Spikee's ``full-prompt`` entries: a summary request or a question about the document."""
    if summary or not question:
        return f"Summarize the following document:\n{document}"
    return f"Given this document:\n{document}\nAnswer the following question: {question}"


def spikee_prompts(count: int = 300, seed: int = 0) -> list[str]:
    """``count`` distinct prompts drawn at random (seeded) from every English (document, jailbreak, instruction,
    position, task) combination of :data:`SEED_FOLDERS`."""
    root = package_file("spikee", "data/workspace/datasets")
    combinations = set()
    for folder in SEED_FOLDERS:
        documents = _rows(root / folder / "base_user_inputs.jsonl")
        jailbreaks = _english(_rows(root / folder / "jailbreaks.jsonl"))
        instructions = _english(_rows(root / folder / "instructions.jsonl"))
        for document in documents:
            placeholder = document.get("placeholder", "")
            for jailbreak in jailbreaks:
                for instruction in instructions:
                    payload = jailbreak["text"].replace("<INSTRUCTION>", instruction["instruction"])
                    for position in POSITIONS[-1:] if placeholder else POSITIONS:
                        text = _inserted(document["document"], payload, position, placeholder)
                        for summary in (True, False):
                            combinations.add(_task(text, document.get("question", ""), summary))
    ordered = sorted(combinations)
    return random.Random(seed).sample(ordered, min(count, len(ordered)))
