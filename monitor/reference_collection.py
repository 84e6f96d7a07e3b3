"""A segment's reference: collected after a warm-up (or pinned), then the detector set is calibrated on it.

An input measured in too few reference events (embeddings are sampled, a segment's topics are fitted after its
first embedded events) has no detector yet: it keeps a pending reference of its own, filled from the events after,
and gets its detector once that has its :attr:`monitor.inputs.Input.needed` values.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field

from core.redact import redact_all
from monitor.cpu import CLOCK
from monitor.detector_set import DetectorSet
from monitor.features import Measurements
from monitor.inputs import MIN_REFERENCE, scalars, spec

REPORT_REFERENCE = 200
"""Reference events (rows and prompts cut to REPORT_CHARS) kept for the incident report's reference window."""
REPORT_CHARS = 300


@dataclass
class ReferenceCollection:
    """The reference being collected (``size`` events after ``warmup``), the pending references of inputs without a
    detector, and the rows kept of the last reference for reports."""

    warmup: int
    size: int
    collect_after: int = 0
    """The reference starts after this event of the segment (and after the warm-up): a rebase moves it on."""
    rows: list[Measurements] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    taken: dict[str, int] = field(default_factory=dict)
    """Values seen while collecting of each input whose reference keeps only its first ones
    (:attr:`monitor.inputs.Input.keep`)."""
    report_rows: list[dict[str, float | str]] = field(default_factory=list)
    """The scalar inputs and the prompt of the reference's last events, for the incident report."""
    pinned: bool = False
    pending: dict[str, list[float | str]] = field(default_factory=dict)
    """Reference values of inputs without a detector yet (too few in the reference)."""
    report_redacted: bool = False
    """Whether the prompts of :attr:`report_rows` are redacted (they are once the state is first pickled)."""

    def __getstate__(self) -> dict[str, object]:
        """The state to pickle: the report rows' prompts redacted (once per reference, in one batch: about 0.6 s for
        200 of them, against 1 s one by one), the prompts of a reference still being collected left out."""
        if not self.report_redacted:
            with CLOCK.stage("redaction"):
                prompts = redact_all([str(row["prompt"]) for row in self.report_rows])
                self.report_rows = [
                    {**row, "prompt": prompt} for row, prompt in zip(self.report_rows, prompts, strict=True)
                ]
            self.report_redacted = True
        return {**self.__dict__, "prompts": []}

    def take(self, inputs: Measurements, prompt: str, event: int) -> bool:
        """Add the segment's ``event``-th event to the reference once past the warm-up; whether it is complete."""
        if event <= max(self.warmup, self.collect_after):
            return False
        full = set()
        for name in inputs:
            if (keep := spec(name).keep) is not None:
                if self.taken.get(name, 0) >= keep:  # enough: the checkpoint stays under 1 MB
                    full.add(name)
                self.taken[name] = self.taken.get(name, 0) + 1
        if full:
            inputs = {name: value for name, value in inputs.items() if name not in full}
        self.rows.append(inputs)
        self.prompts = [*self.prompts[-(REPORT_REFERENCE - 1) :], prompt[:REPORT_CHARS]]
        return len(self.rows) >= self.size

    def pin(self, rows: list[Measurements], prompts: list[str] | None, detectors: DetectorSet) -> None:
        """Calibrate ``detectors`` on ``rows`` (``prompts``: their prompts, for reports); pinned until rebased."""
        self.prompts = [prompt[:REPORT_CHARS] for prompt in (prompts or [])][-REPORT_REFERENCE:]
        self.calibrate(rows, detectors)
        self.pinned = True

    def calibrate(self, rows: list[Measurements], detectors: DetectorSet) -> None:
        """Calibrate ``detectors`` for every input measured in enough ``rows`` (optional inputs are absent from some
        events; those events do not count for them, and an input with fewer rows is left pending)."""
        values: dict[str, list] = {}
        for row in rows:
            for name, value in row.items():
                values.setdefault(name, []).append(value)
        for name in values:
            if (keep := spec(name).keep) is not None:  # the first ones, pinned or rolling alike
                values[name] = values[name][:keep]
        ready = {name for name, v in values.items() if len(v) >= spec(name).needed}
        if not ready:
            raise ValueError(f"a reference needs a feature measured in at least {MIN_REFERENCE} rows")
        self.pending = {name: v for name, v in values.items() if name not in ready}
        detectors.calibrate({name: values[name] for name in ready}, measured=values.keys())
        kept = rows[-len(self.prompts) :] if self.prompts else []
        self.report_rows = [
            {**scalars(row), "prompt": prompt[:REPORT_CHARS]}
            for row, prompt in zip(kept, self.prompts[-len(kept) :], strict=True)
        ][-REPORT_REFERENCE:]
        self.rows, self.prompts, self.taken, self.report_redacted = [], [], {}, False

    def rebase(self, event: int) -> None:
        """Drop the reference; the events after the segment's ``event``-th and a new warm-up become the next one."""
        self.rows, self.prompts, self.report_rows, self.pending = [], [], [], {}
        self.collect_after, self.pinned = event + self.warmup, False

    def collects(self, name: str, watched: Container[str]) -> bool:
        """Whether values of input ``name`` go to its pending reference: it has no detector (is not ``watched``)
        and either may start a reference after the segment's (:attr:`monitor.inputs.Input.late_reference`) or
        has a pending one."""
        return name not in watched and (spec(name).late_reference or name in self.pending)

    def collect_pending(self, inputs: Measurements, detectors: DetectorSet) -> None:
        """Add an event's values of inputs without a detector to their references; calibrate those complete."""
        for name, value in inputs.items():
            if not self.collects(name, detectors.detectors):
                continue
            collected = self.pending.setdefault(name, [])
            collected.append(value)
            if len(collected) >= spec(name).needed:
                detectors.add(name, self.pending.pop(name))

    def first_complete(self, positions: dict[str, list[int]], collecting: list[str], stop: int) -> int:
        """Position of the event that completes a pending reference of the ``collecting`` inputs (``stop`` if none
        before it); ``positions``: input name → the positions of the events that measured it."""
        for name in collecting:
            missing = spec(name).needed - len(self.pending.get(name, []))
            stop = min(stop, positions[name][missing - 1]) if len(positions[name]) >= missing else stop
        return stop

    def extend(self, fed: dict[str, list[int]], inputs: list[Measurements]) -> None:
        """Add the values of ``inputs`` at positions ``fed`` (input name → positions) to their pending references."""
        for name, positions in fed.items():
            if positions:
                self.pending.setdefault(name, []).extend(inputs[i][name] for i in positions)
