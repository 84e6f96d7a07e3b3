"""What generators produce: samples with the technique that made them and the expected behaviour."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel

from monitor.incidents import DriftIncident


class Expected(StrEnum):
    """How a robust model should respond to a sample."""

    ANSWER = "answer"
    REFUSE = "refuse"
    CLARIFY = "ask_to_clarify"
    IGNORE_INJECTION = "ignore_injected_instruction"


class Sample(BaseModel):
    id: str
    prompt: str
    technique: str
    expected: Expected
    reference_answer: str
    generator: str
    seed: str

    @classmethod
    def make(
        cls, prompt: str, technique: str, expected: Expected, reference_answer: str, generator: str, seed: str
    ) -> Sample:
        """A sample whose id is the hash of its content."""
        digest = hashlib.sha256(f"{technique}\0{prompt}".encode()).hexdigest()[:16]
        return cls(
            id=digest,
            prompt=prompt,
            technique=technique,
            expected=expected,
            reference_answer=reference_answer,
            generator=generator,
            seed=seed,
        )


class Generator(Protocol):
    """Turns an incident into candidate samples; the same ``seed`` gives the same samples."""

    name: str
    version: str

    def generate(self, incident: DriftIncident, count: int, seed: str) -> Iterator[Sample]: ...
