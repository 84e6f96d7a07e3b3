"""What generators produce: samples with the technique that made them and the expected behaviour.

>>> sample = Sample.make("Hi", "casing", Expected.ANSWER, "Hello!", "perturbation/1.0", "0", {"note": "x"})
>>> sample.id == Sample.make("Hi", "casing", Expected.ANSWER, "Hello.", "other/2", "1").id
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, Field

from monitor.incidents import DriftIncident


class Expected(StrEnum):
    """How a robust model should respond to a sample."""

    ANSWER = "answer"
    REFUSE = "refuse"
    CLARIFY = "ask_to_clarify"
    IGNORE_INJECTION = "ignore_injected_instruction"
    ANSWER_WITHOUT_BIAS = "answer_without_bias"


class Sample(BaseModel):
    id: str = Field(description="content address: hash of technique and prompt")
    prompt: str
    technique: str
    expected: Expected
    reference_answer: str
    generator: str
    seed: str
    metadata: dict[str, str] = Field(
        default_factory=dict, description="what the technique planted: canary, decoded payload, pair id, …"
    )

    @classmethod
    def make(
        cls,
        prompt: str,
        technique: str,
        expected: Expected,
        reference_answer: str,
        generator: str,
        seed: str,
        metadata: dict[str, str] | None = None,
    ) -> Sample:
        """A sample whose id is the hash of its content (technique and prompt)."""
        digest = hashlib.sha256(f"{technique}\0{prompt}".encode()).hexdigest()[:16]
        return cls(
            id=digest,
            prompt=prompt,
            technique=technique,
            expected=expected,
            reference_answer=reference_answer,
            generator=generator,
            seed=seed,
            metadata=metadata or {},
        )


class Generator(Protocol):
    """Turns an incident into candidate samples; the same ``seed`` gives the same samples."""

    name: str
    version: str

    def generate(self, incident: DriftIncident, count: int, seed: str) -> Iterator[Sample]: ...
