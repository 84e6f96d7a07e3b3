"""What generators produce: a :class:`Batch` of samples, each with the technique that made it and the expected
behaviour, and what the generator dropped, by reason.

>>> sample = Sample.make("Hi", "casing", Expected.ANSWER, "Hello!", "perturbation/1.0", "0", {"note": "x"})
>>> sample.id == Sample.make("Hi", "casing", Expected.ANSWER, "Hello.", "other/2", "1").id
True
>>> batch = Batch([sample], {"too_short": 2})
>>> list(batch) == batch.samples, batch.rejected
(True, {'too_short': 2})
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Protocol

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


@dataclass(frozen=True)
class Batch:
    """The samples of one ``generate`` call (iterate it) and what the generator dropped, by reason."""

    samples: list[Sample]
    rejected: dict[str, int] = field(default_factory=dict)
    """Samples the generator made or asked for and did not keep, by reason; empty when it drops none."""

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)


class Generator(Protocol):
    """Turns an incident into candidate samples; the same ``seed`` gives the same samples."""

    name: str
    version: str
    techniques: tuple[str, ...]
    """Every ``Sample.technique`` it writes."""

    def generate(self, incident: DriftIncident, count: int, seed: str) -> Batch: ...


class RuleGenerator(ABC):
    """A generator that writes samples by rule and drops none: ``generate`` gathers what :meth:`samples` yields."""

    name: ClassVar[str]
    version: ClassVar[str]
    techniques: ClassVar[tuple[str, ...]]

    def generate(self, incident: DriftIncident, count: int, seed: str) -> Batch:
        return Batch(list(self.samples(incident, count, seed)))

    @abstractmethod
    def samples(self, incident: DriftIncident, count: int, seed: str) -> Iterator[Sample]:
        """The samples for ``incident``, in order; the same ``seed`` gives the same ones."""
