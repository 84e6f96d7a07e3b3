"""A sampled judge of responses, off the stream: its scores become the ``judge_score`` feature of later events.

A share of the events (``DRIFTLOOP_JUDGE_SAMPLE_RATE``, by a hash of the event id, independent of the embedding
sample) that have a response are offered to a :class:`Judge` (an LLM asked for a 1–5 helpfulness and correctness
score: :class:`generators.judge.LLMJudge`). :meth:`JudgeSampler.offer` only starts a task per sampled event and
returns; the stream never waits for a verdict. A verdict comes back seconds later, when its event has been
observed already, so it is measured on the *next* event of the same segment: :meth:`JudgeSampler.attach` puts the
oldest waiting score of each segment into that event's measurements as ``judge_score``, an optional feature like
the embedding features (absent from most events, never read as 0). The segment's reference for it is collected
like theirs: a segment whose reference holds fewer than 200 judged events collects a reference of its own from the
events after, and then calibrates its CUSUM. The scores' order is their verdicts', and the onset an incident
reports for ``judge_score`` is late by the judge's delay (seconds, a few events).

The judge's budget bounds the calls: none starts while it is spent (``over_budget``), nor while
``max_pending`` verdicts are awaited (``busy``); both are counted, like unreadable verdicts and failed calls, in
``driftloop_judge_verdicts_total``. Waiting scores live in the worker's memory only (a restart loses a few).

>>> import asyncio
>>> from monitor.events import TrafficEvent
>>> class Constant:
...     exhausted = False
...     async def score(self, prompt: str, response: str) -> float:
...         return 4.0
...     async def close(self) -> None:
...         pass
>>> async def main() -> list:
...     sampler = JudgeSampler(Constant(), rate=1.0, max_pending=8)
...     sampler.offer([TrafficEvent(id="a", model="m", prompt="2+2?", response="4")])
...     await asyncio.gather(*sampler.pending)
...     later = [TrafficEvent(id=i, model="m", prompt="hi", response="hello") for i in ("b", "c")]
...     inputs = [{}, {}]
...     sampler.attach(later, inputs)
...     await sampler.close()
...     return inputs
>>> asyncio.run(main())
[{'judge_score': 4.0}, {}]
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from monitor.events import TrafficEvent, sampled
from monitor.features import Measurements
from monitor.metrics import MonitorMetrics

log = logging.getLogger(__name__)

FEATURE = "judge_score"
WAITING = 64
"""Most scores a segment keeps waiting for its next events (the oldest go first)."""


class OverBudget(RuntimeError):
    """The judge's budget for now is spent: no call was made."""


class UnreadableVerdict(ValueError):
    """The judge's reply holds no score from 1 to 5; carries the reply."""

    def __init__(self, reply: str) -> None:
        super().__init__(f"no score from 1 to 5 in the judge's reply {reply[:200]!r}")
        self.reply = reply


class Judge(Protocol):
    """Scores a response to a prompt from 1 (useless or wrong) to 5 (fully helpful and correct)."""

    @property
    def exhausted(self) -> bool:
        """Its budget for now is spent: a call would raise :class:`OverBudget`."""
        ...

    async def score(self, prompt: str, response: str) -> float:
        """The score; raises :class:`OverBudget`, :class:`UnreadableVerdict`, or whatever a failed call raises."""
        ...

    async def close(self) -> None:
        """Release its connections."""
        ...


def judged(event_id: str, rate: float) -> bool:
    """Whether an event is in the judge's sample: a hash of its id, salted so the sample is not the embedding one.

    >>> judged("evt-1", 1.0), judged("evt-1", 0.0)
    (True, False)
    """
    return sampled(f"{event_id}#judge", rate)


@dataclass
class JudgeSampler:
    """Offers a ``rate`` sample of the events to ``judge`` (at most ``max_pending`` verdicts awaited at once) and
    holds the scores until :meth:`attach` gives them to events of their segment."""

    judge: Judge
    rate: float
    max_pending: int
    metrics: MonitorMetrics = field(default_factory=MonitorMetrics.default)
    ready: dict[str, deque[float]] = field(default_factory=dict)
    """Segment → the scores waiting for its next events, oldest first."""
    pending: set[asyncio.Task] = field(default_factory=set)
    failing: bool = False
    """The last call failed (logged once until one succeeds)."""

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1 or self.max_pending < 1:
            raise ValueError(f"need 0 <= rate <= 1 and max_pending >= 1, got {self.rate}, {self.max_pending}")

    def offer(self, events: Iterable[TrafficEvent]) -> None:
        """Start judging the sampled events that have a response, within the budget (on the event loop; returns at
        once)."""
        for event in events:
            if not event.response or not judged(event.id, self.rate):
                continue
            if self.judge.exhausted:
                self._count("over_budget")
            elif len(self.pending) >= self.max_pending:
                self._count("busy")
            else:
                task = asyncio.create_task(self._judge(event.segment, event.prompt_text, event.response))
                self.pending.add(task)
                task.add_done_callback(self.pending.discard)

    def attach(self, events: list[TrafficEvent], inputs: list[Measurements]) -> None:
        """Give each event the oldest score waiting for its segment, if any, as its ``judge_score``."""
        for event, measured in zip(events, inputs, strict=True):
            waiting = self.ready.get(event.segment)
            if waiting:
                measured[FEATURE] = waiting.popleft()
                if not waiting:
                    del self.ready[event.segment]

    def forget(self) -> None:
        """Drop the waiting scores (a rebalance: their segments may be another worker's now)."""
        self.ready.clear()

    async def close(self) -> None:
        """Cancel the verdicts still awaited; close the judge."""
        for task in list(self.pending):
            task.cancel()
        await asyncio.gather(*self.pending, return_exceptions=True)
        await self.judge.close()

    async def _judge(self, segment: str, prompt: str, response: str) -> None:
        try:
            score = await self.judge.score(prompt, response)
        except OverBudget:
            self._count("over_budget")
        except UnreadableVerdict as error:
            log.info("%s", error)
            self._count("unreadable")
        except Exception as error:  # noqa: BLE001 - an endpoint down or refusing: counted, never raised into the stream
            if not self.failing:
                log.warning("the judge failed (logged again once it has recovered and fails again): %s", error)
            self.failing = True
            self._count("failed")
        else:
            if self.failing:
                log.warning("the judge answers again")
            self.failing = False
            self.ready.setdefault(segment, deque(maxlen=WAITING)).append(float(score))
            self._count("scored")

    def _count(self, outcome: str) -> None:
        self.metrics.judge_verdicts.labels(outcome).inc()
