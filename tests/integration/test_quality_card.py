"""A job's dataset carries its quality card, the API serves it, and a later job of the same segment and kind
deduplicates against it: real Redis, broker, store and embeddings."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from driftloop.kafka import ensure_topics
from driftloop.settings import Settings
from feedback import DatasetRegistry
from feedback.datasets import heldout_rows
from feedback.publishing import KafkaSend
from generators.quality import Seen
from tests.factories import traffic_incident
from tests.integration.helpers import run, runner

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_jobs_dataset_has_a_served_quality_card(
    settings: Settings, client: TestClient, read_client: TestClient
) -> None:
    ensure_topics(settings)

    async def scenario(redis: Redis, send: KafkaSend) -> tuple:
        worker = runner(redis, send, settings.data_dir, "worker-a")
        [first] = await worker.handle(traffic_incident(id="inc-1"))
        own = await worker._earlier(traffic_incident(id="inc-1"), first.id)
        other = await worker._earlier(traffic_incident(id="inc-2"), "j")
        return first, await DatasetRegistry(redis).get(first.dataset_id), own, other

    first, manifest, own, other = run(settings, scenario)
    assert first.state == "succeeded", first.error
    assert manifest.file("quality.html") is not None and manifest.quality.passed
    assert manifest.quality.mmd2 is not None and manifest.quality.coverage is not None

    response = read_client.get(f"/v1/datasets/{first.dataset_id}/quality.html")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src" not in response.headers["content-security-policy"]
    page = response.text
    assert "PASSED" in page and "inc-1" in page and page.count("<svg") == 3
    assert client.get("/v1/datasets/ds-missing/quality.html").status_code == 404

    assert own == [], "a job's own version is no earlier version"
    table = pq.read_table(f"{manifest.path}/samples.parquet", columns=["technique", "prompt"]).to_pylist()
    held_out = heldout_rows(manifest)  # seen too: a later version must not train on an earlier one's held-out rows
    assert held_out and other == [Seen(manifest.id, row["technique"], row["prompt"]) for row in table + held_out]
