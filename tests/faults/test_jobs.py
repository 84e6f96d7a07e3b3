"""Concurrent generation jobs on two workers, one of them SIGKILLed while it runs a job: still exactly one job,
one dataset version and one finetune.requests message per incident."""

from __future__ import annotations

from collections import Counter

import pytest
from kafka import KafkaProducer

from feedback.jobs import JobState
from tests.factories import traffic_incident
from tests.faults.harness import Rig
from tests.integration.helpers import stored_datasets, stored_jobs, topic_messages, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

KINDS = ("attack-wave", "input-shift", "robustness-regression", "quality-drop")
"""Kinds whose recipes are rule-based only (no LLM endpoint here)."""


def open_incidents(rig: Rig, count: int) -> list[str]:
    """Publish ``count`` incidents of distinct segments to the incidents topic, as the monitor does; their ids."""
    incidents = [
        traffic_incident(id=f"inc-{n}", kind=KINDS[n % len(KINDS)], segment=f"gpt-4o-mini/chat/t{n}")
        for n in range(count)
    ]
    topic = rig.settings.incidents_topic
    producer = KafkaProducer(bootstrap_servers=rig.settings.kafka_bootstrap, acks="all")
    try:
        for incident in incidents:
            producer.send(topic, key=incident.id.encode(), value=incident.model_dump_json().encode())
        producer.flush()
    finally:
        producer.close()
    return [incident.id for incident in incidents]


def owner_pid(lease_owner: str) -> int:
    """The process id in a lease owner id (``host-pid-suffix``, :func:`feedback.runner.worker_id`)."""
    return int(lease_owner.rsplit("-", 2)[1])


@pytest.mark.parametrize("kill", [False, True], ids=["both-live", "one-killed-mid-job"])
def test_concurrent_jobs_on_two_workers(rig: Rig, kill: bool) -> None:
    rig.settings = rig.settings.model_copy(update={"job_concurrency": 2})
    workers = rig.start_workers(2)
    opened = open_incidents(rig, 6)
    if kill:
        running = wait_for(
            lambda: [job for job in stored_jobs(rig.settings) if job.state == JobState.RUNNING and job.lease_owner],
            120,
            "a job to run",
            every=0.05,
        )
        victim = running[0]
        rig.kill(next(worker for worker in workers if worker.pid == owner_pid(victim.lease_owner)))

    def finished() -> list:
        jobs = stored_jobs(rig.settings)
        return jobs if len(jobs) == len(opened) and all(job.finished for job in jobs) else []

    jobs = wait_for(finished, rig.faults.settle_s, "every incident's job to finish")
    assert {job.state for job in jobs} == {JobState.SUCCEEDED}, [(job.id, job.state, job.error) for job in jobs]
    # none of the rebalances crashed a worker left alive (Faust's livelock check once did, on a partition in reset)
    alive = [worker for worker in workers if not kill or worker.pid != owner_pid(victim.lease_owner)]
    assert [worker.poll() for worker in alive] == [None] * len(alive)
    once = Counter(opened)
    assert Counter(job.incident_id for job in jobs) == once
    assert Counter(dataset.lineage.incident_id for dataset in stored_datasets(rig.settings)) == once
    # no LLM endpoint in the rig: evaluation sets, announced by webhook, never sent on finetune.requests
    assert topic_messages(rig.settings, rig.settings.finetune_topic, idle_ms=1000) == []

    def announced() -> list[dict]:
        payloads = [r.payload for r in rig.receiver.received if r.verified and r.payload["type"] == "dataset.published"]
        return payloads if len(payloads) >= len(opened) else []

    payloads = wait_for(announced, 30, "every dataset's webhook")
    assert Counter(payload["data"]["incident_id"] for payload in payloads) == once
    assert sorted(payload["data"]["dataset_id"] for payload in payloads) == sorted(job.dataset_id for job in jobs)
    if kill:
        [taken_over] = [job for job in jobs if job.id == victim.id]
        assert taken_over.attempts >= 2, "the killed worker's job was run again, by the live one"
