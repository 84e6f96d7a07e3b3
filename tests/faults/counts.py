"""What a fault scenario reads back, as one record compared with what it expects: an assertion on two
:class:`Counts` names the fields that differ and their values."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from feedback.jobs import FINISHED, JobState
from feedback.runner import GATED
from generators.recipes import load_recipes
from tests.faults.harness import Rig
from tests.integration.helpers import (
    accepted,
    segment_events,
    stored_datasets,
    stored_incidents,
    stored_jobs,
    stream_positions,
    topic_messages,
)

Effects = dict[str, int]
"""Segment → how many of one effect it has (incidents, jobs, ...)."""


@dataclass(frozen=True)
class Counts:
    """The events and effects of a scenario: published = accepted + dead-lettered = in the detectors; one incident
    per shifted segment, and one job, dataset and ``dataset.published`` delivery per recipe its causes call for."""

    published: int
    """Sends the broker acknowledged."""
    accepted: int
    """The stream's accepted counter in Redis."""
    dead_lettered: int
    """Records on the dead-letter topic, each counted once however often it was dead-lettered (a record is
    dead-lettered again when its worker died after the send, before the offset committed), as a consumer of the
    dead letters that drops repeats by their source sees them."""
    in_detectors: int
    """Events in detector state, summed over the segments' statuses."""
    incidents: Effects = field(default_factory=dict)
    jobs: Effects = field(default_factory=dict)
    datasets: Effects = field(default_factory=dict)
    finetune_requests: Effects = field(default_factory=dict)
    incident_webhooks: Effects = field(default_factory=dict)
    """Verified ``incident.opened`` deliveries received, one a webhook-id."""
    dataset_webhooks: Effects = field(default_factory=dict)
    """Verified ``dataset.published`` deliveries received, one a webhook-id."""
    workers_up: int = 0

    @classmethod
    def expected(cls, rig: Rig, dead_lettered: int, shifted: set[str], workers_up: int) -> Counts:
        """Every published event accepted or dead-lettered, each accepted one in the detectors; one incident per
        ``shifted`` segment and none elsewhere, and one job per recipe of its stored causes (read now: a cause added
        later calls for its own job), each with a dataset and a delivery unless the quality gate turned it down."""
        once = dict.fromkeys(sorted(shifted), 1)
        planned = planned_jobs(rig, shifted)
        written = datasets_written(planned, gated_jobs(rig))
        accepted = rig.published - dead_lettered
        # no LLM endpoint in the rig: datasets are evaluation sets, never sent on finetune.requests
        return cls(
            rig.published, accepted, dead_lettered, accepted, once, planned, written, {}, once, written, workers_up
        )


def planned_jobs(rig: Rig, shifted: set[str]) -> Effects:
    """Shifted segment → the jobs its incidents call for: one per recipe of the causes stored now, and of causes
    named earlier (a worker that took a segment over from its last checkpoint may name fewer causes at first; the
    runner had already submitted their jobs). Job ids are a function of incident and recipe, so this is also the
    most jobs there can be; a segment without an incident yet calls for one, so a missing incident shows in every
    effect."""
    book = load_recipes(rig.settings.recipes_path)
    submitted = defaultdict(set)
    for job in stored_jobs(rig.settings):
        submitted[job.incident_id].add(job.recipe)
    planned = dict.fromkeys(sorted(shifted), 0)
    for incident in stored_incidents(rig.settings):
        if incident.segment in planned:
            named = {recipe.name for recipe in book.for_incident(incident)}
            planned[incident.segment] += len(named | submitted[incident.id])
    return {segment: jobs or 1 for segment, jobs in planned.items()}


def datasets_written(planned: Effects, turned_down: Effects) -> Effects:
    """Segment → the datasets its planned jobs write, less those the quality gate turned down; a segment left
    with none is absent, as it is from the counts read back.

    >>> datasets_written({"chat/t1": 2, "chat/t2": 1}, {"chat/t1": 1, "chat/t2": 1})
    {'chat/t1': 1}
    """
    return {segment: left for segment, jobs in planned.items() if (left := jobs - turned_down.get(segment, 0))}


def gated_jobs(rig: Rig) -> Effects:
    """Segment → its jobs that the quality gate turned down: they end failed, with no dataset, a verdict on what
    was generated (which depends on the evidence, so on where the detectors fired), not a loss."""
    segments = {incident.id: incident.segment for incident in stored_incidents(rig.settings)}
    gated = [
        job for job in stored_jobs(rig.settings) if job.state == JobState.FAILED and (job.error or "").startswith(GATED)
    ]
    return dict(Counter(segments.get(job.incident_id) for job in gated))


def read_counts(rig: Rig) -> Counts:
    """The rig's counts now (its services must be up)."""
    settings = rig.settings
    segments = {incident.id: incident.segment for incident in stored_incidents(settings)}

    def per_segment(incident_ids: list[str]) -> Effects:
        return dict(sorted(Counter(segments.get(i, f"unknown incident {i}") for i in incident_ids).items()))

    # delivery is at least once (a worker killed after a send, before marking it done, leaves it to be sent again
    # under the same webhook-id): counted as a receiver that dedups on webhook-id sees them
    received = list({r.message_id: r for r in rig.receiver.received if r.verified}.values())
    return Counts(
        published=rig.published,
        accepted=accepted(settings),
        dead_lettered=len(
            {tuple(m["source"].values()) for m in topic_messages(settings, settings.dlq_topic, idle_ms=1000)}
        ),
        in_detectors=segment_events(settings),
        incidents=dict(sorted(Counter(segments.values()).items())),
        jobs=per_segment([job.incident_id for job in stored_jobs(settings)]),
        datasets=per_segment([dataset.lineage.incident_id for dataset in stored_datasets(settings)]),
        finetune_requests=per_segment(
            [m["data"]["incident_id"] for m in topic_messages(settings, settings.finetune_topic, idle_ms=1000)]
        ),
        incident_webhooks=per_segment(
            [r.payload["data"]["id"] for r in received if r.payload["type"] == "incident.opened"]
        ),
        dataset_webhooks=per_segment(
            [r.payload["data"]["incident_id"] for r in received if r.payload["type"] == "dataset.published"]
        ),
        workers_up=rig.live_workers(),
    )


def differences(counts: Counts, expected: Counts, rig: Rig | None = None) -> str:
    """The fields where ``counts`` are not ``expected``, one a line; with the ``rig``, where the stream's
    consumer group stands in the traffic topics, to tell events the broker lost from events left unread.

    >>> differences(Counts(10, 9, 0, 7), Counts(10, 10, 0, 10))
    'accepted: 9, expected 10\\nin_detectors: 7, expected 10'
    """
    lines = [
        f"{name}: {getattr(counts, name)}, expected {getattr(expected, name)}"
        for name in Counts.__dataclass_fields__
        if getattr(counts, name) != getattr(expected, name)
    ]
    if rig is not None and lines:
        lines.append(f"stream positions (partition: committed/end): {stream_positions(rig.settings)}")
        lines += [
            f"incident {incident.id} after event {incident.detected_after_events}: {incident.headline}"
            for incident in stored_incidents(rig.settings)
        ]
        lines += [
            f"job {job.id} of incident {job.incident_id}: {job.state}" + (f" ({job.error})" if job.error else "")
            for job in stored_jobs(rig.settings)
        ]
        letters = Counter(
            f"{letter.get('reason')}: {str(letter.get('detail'))[:200]}"
            for letter in topic_messages(rig.settings, rig.settings.dlq_topic, idle_ms=1000)
        )
        lines += [f"dead letters {count}x {why}" for why, count in letters.most_common()]
    return "\n".join(lines)


def assert_counts(counts: Counts, expected: Counts, rig: Rig) -> None:
    """Fail with :func:`differences` as the last lines of the report (a CI log shows its tail)."""
    if counts != expected:
        pytest.fail(differences(counts, expected, rig), pytrace=False)


def settle(rig: Rig, expect: Callable[[], Counts]) -> tuple[Counts, Counts]:
    """Read the counts until they are what ``expect`` says now, or have stopped short (unchanged for ``stable_s``
    since a job was last seen unfinished: a job finishing between two reads writes its dataset after the first), or
    ``settle_s`` passed; the last counts read and what was expected of them."""
    started = changed = time.monotonic()
    counts, expected = read_counts(rig), expect()
    while counts != expected and time.monotonic() - started < rig.faults.settle_s:
        if unfinished_jobs(rig):
            changed = time.monotonic()
        elif time.monotonic() - changed > rig.faults.stable_s:
            break
        time.sleep(1.0)
        latest, expected = read_counts(rig), expect()
        if latest != counts:
            counts, changed = latest, time.monotonic()
    return counts, expected


def unfinished_jobs(rig: Rig) -> int:
    return sum(job.state not in FINISHED for job in stored_jobs(rig.settings))
