"""Attacks on assistants and agents that three more registry packages ship, read from their data files without
importing them: training sources of the learned injection score (:mod:`core.injection_model`) since ``VERSION`` 11.

- **raginject** (``raginject`` on PyPI, Apache-2.0): documents a retriever hands to the model, each with an
  instruction planted in it (override, exfiltration, format smuggling, authority spoofing, payload delivery,
  obfuscation, other languages, delayed triggers) and the user's question about it. A prompt is the question and
  the document, as a gateway logs a retrieval-augmented turn. Each document holds its payload verbatim, so the
  same document without it is a benign look-alike (:func:`raginject_prompts` ``"benign"``), unless nothing is left
  of it (the payload was the whole document) or the attack's marker still is (said twice).
- **agent-guardian** (``agent-guardian``, Apache-2.0): the seed prompts of its probes for the OWASP top ten of
  agentic applications (goal hijack, tool misuse, privilege abuse, memory poisoning, poisoned tool descriptions,
  rogue persistence, ...), the ``asi*`` folders (its judge calibration and recon probes are left out, and so are
  probes whose attack is an attached image: their seeds, "Describe what you see.", are benign alone).
- **agentic-redteam** (``agentic-redteam``, MIT): the queries of its prompt-injection, indirect-injection,
  jailbreak and MCP payload files (its action-level, code-safety, PII and schema files test other harms; its clean
  queries are ten).

Retriever poisoning (raginject's term salads that carry no instruction) is left out: nothing in such a document
addresses the model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import cache

import yaml

from core.package_data import package_file

AGENTIC_FILES = ("prompt_injection.yaml", "indirect_injection.yaml", "jailbreak.yaml", "mcp_security.yaml")
"""agentic-redteam's payload files of attacks on the model's instructions."""


def raginject_prompts(label: str) -> tuple[str, ...]:
    """raginject's question and document of each pattern (``label`` ``"malicious"``), or the same document with its
    payload removed (``"benign"``).

    >>> attacks, benign = raginject_prompts("malicious"), raginject_prompts("benign")
    >>> len(attacks) > len(benign) > 30, "Ignore all previous instructions" in attacks[0], benign[0] in attacks[0]
    (True, True, False)
    """
    if label not in ("malicious", "benign"):
        raise ValueError(f"raginject labels no prompt {label!r}")
    return _raginject()[label == "benign"]


@cache
def _raginject() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(attacks, their documents without the payload), read once."""
    attacks, benign = [], []
    for path in sorted(package_file("raginject", "attacks/patterns").glob("*.yaml")):
        for pattern in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            document, payload = pattern["injected_content"].strip(), pattern["payload"].strip()
            if payload not in document:
                continue
            attacks.append(f"{pattern['question']}\n\n{document}")
            rest = document.replace(payload, "").strip()
            markers = pattern.get("success_criteria", {}).get("forbidden_in_answer", [])
            if rest and not any(marker in rest for marker in markers):
                benign.append(f"{pattern['question']}\n\n{rest}")
    return _unique(attacks), _unique(benign)


@cache
def guardian_prompts() -> tuple[str, ...]:
    """agent-guardian's probe seeds of the ``asi*`` folders."""
    root = package_file("agent_guardian", "probes")
    seeds = []
    for path in sorted(root.glob("asi*/*.yaml")):
        probe = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not probe.get("attachments"):
            seeds += [seed for seed in probe.get("seeds") or [] if isinstance(seed, str)]
    return _unique(seeds)


@cache
def agentic_prompts() -> tuple[str, ...]:
    """agentic-redteam's queries of :data:`AGENTIC_FILES`."""
    queries = []
    for name in AGENTIC_FILES:
        cases = yaml.safe_load(package_file("agentic_redteam", f"payloads/{name}").read_text(encoding="utf-8"))
        queries += [case["vars"]["query"] for case in cases if isinstance(case.get("vars", {}).get("query"), str)]
    return _unique(queries)


def _unique(texts: Iterable[str]) -> tuple[str, ...]:
    """``texts`` stripped, in order, each once (by its letters: copies that differ in a number or a canary count
    once)."""
    seen, kept = set(), []
    for text in (text.strip() for text in texts):
        letters = hashlib.sha256("".join(filter(str.isalpha, text.lower())).encode()).digest()
        if text and letters not in seen:
            seen.add(letters)
            kept.append(text)
    return tuple(kept)
