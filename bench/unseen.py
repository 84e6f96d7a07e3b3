"""Attack corpora that nothing in the project trains on, tunes on or reads but :mod:`bench.injection`'s table (since
stop 45; llmail-inject since stop 52): four registry packages, read from their data files (garak-multilingual's is a
module of data alone).

- **aicu-scanner** (``aicu-scanner`` on PyPI, MIT): system-prompt extraction dressed as ordinary tasks (a welcome
  e-mail describing "how you're configured", a unit test of "your expected outputs", a config backup to complete),
  jailbreaks, encodings, evasion and documents with planted instructions: its single-turn payload files and its
  intruder lists (its denial-of-service, hallucination, toxicity and multi-turn files test other harms).
- **vigia** (``vigia``, MIT): attack seeds in Spanish, Catalan, Galician and Basque, and code-switched between
  them: disclosure of sensitive data, hidden-context extraction, injections, agents' goals hijacked (its resource
  exhaustion seeds test another harm). Some are one turn of a strategy over several turns (a question split over
  time, a context leak waited for) and read as benign alone.
- **garak-multilingual** (``garak-multilingual``, Apache-2.0): injections and jailbreaks in Turkish (case-folding
  evasions included) and seven more languages.
- **llmail-inject** (the ``prompt-armor`` package's attack file, Apache-2.0, which re-packages the e-mails of
  Microsoft's LLMail-Inject challenge, MIT): e-mails that people wrote to make an assistant that summarises an inbox
  send an e-mail of their choosing, each planting its instruction in business text (fake delimiters, role
  markers, scrambled case and typos included).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

from core.corpora import unique
from core.package_data import package_file

AICU_FILES = (
    "single_turn.yaml",
    "advanced_evasion.yaml",
    "encoding_attacks.yaml",
    "file_payloads.yaml",
    "jailbreaks.yaml",
)
"""aicu-scanner's payload files of attacks (each payload's ``content``)."""
LLMAIL_DRAW = 300
"""llmail-inject e-mails scored: a seeded draw of its distinct openings (MiniLM embeds them in seconds)."""


def unseen_attacks() -> dict[str, list[str]]:
    """Each corpus's attack prompts, by name."""
    return {
        "aicu-scanner": aicu_prompts(),
        "vigia": vigia_prompts(),
        "garak-multilingual": garak_multilingual_prompts(),
        "llmail-inject": llmail_prompts(),
    }


def aicu_prompts() -> list[str]:
    """The ``content`` of every payload in :data:`AICU_FILES` and each line of its intruder lists."""
    root = package_file("aicu", "payloads")
    texts: list[str] = []
    for name in AICU_FILES:
        texts += _contents(yaml.safe_load((root / name).read_text(encoding="utf-8")))
    for path in sorted(root.glob("intruder_0*.txt")):
        texts += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return list(unique(texts))


def _contents(node: object) -> list[str]:
    """The ``content`` strings anywhere in a parsed YAML tree."""
    if isinstance(node, dict):
        own = [node["content"]] if isinstance(node.get("content"), str) else []
        return own + [text for value in node.values() for text in _contents(value)]
    if isinstance(node, list):
        return [text for value in node for text in _contents(value)]
    return []


def vigia_prompts() -> list[str]:
    """The prompts of vigia's validated seeds and agent seeds but those of resource exhaustion."""
    seeds = package_file("vigia", "corpus/seeds")
    rows = [row for name in ("seeds_validated.json", "agent_seeds.json") for row in _json(seeds / name)]
    return list(unique(row["prompt"] for row in rows if row.get("category") != "unbounded_consumption"))


def garak_multilingual_prompts() -> list[str]:
    """The prompts of garak-multilingual's payload sets (``garak_multilingual.payloads`` imports nothing)."""
    from garak_multilingual.payloads import PAYLOAD_SETS

    return list(unique(item["prompt"] for items in PAYLOAD_SETS.values() for item in items))


def llmail_prompts(count: int = LLMAIL_DRAW, seed: int = 0) -> list[str]:
    """A draw by ``seed`` of ``count`` llmail-inject e-mails, one per opening: its rows hold an attempt's many retries
    with a word or a character changed (12,647 rows, about 7,300 openings of 60 characters)."""
    path = package_file("prompt_armor", "data/attacks/known_attacks.jsonl")
    by_opening: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["source"] == "llmail-inject" and (text := row["text"].strip()):
            by_opening.setdefault(text[:60].lower(), text)
    return random.Random(seed).sample(sorted(by_opening.values()), count)


def _json(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))
