"""The dataset registry API on a real Redis and filesystem: filters, verified downloads, diffs, acks, retention."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from driftloop.settings import Settings
from feedback import AckStore, DatasetRegistry, DatasetStore, is_open
from feedback.datasets import heldout_rows
from feedback.manifest import DatasetManifest
from tests.factories import make_incident, make_version

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)


def register(settings: Settings, manifest: DatasetManifest, days_ago: float = 0) -> DatasetManifest:
    """Record ``manifest`` in the registry as the job runner does, created ``days_ago``."""
    record = manifest.model_copy(update={"created_at": NOW - timedelta(days=days_ago)})

    async def go() -> None:
        redis = Redis.from_url(settings.redis_url)
        try:
            assert await DatasetRegistry(redis).register(record)
        finally:
            await redis.aclose()

    asyncio.run(go())
    return record


def open_request(settings: Settings, dataset_id: str) -> bool:
    async def go() -> bool:
        redis = Redis.from_url(settings.redis_url)
        try:
            return await is_open(redis, dataset_id)
        finally:
            await redis.aclose()

    return asyncio.run(go())


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [d["id"] for d in response.json()]


def test_list_filters_and_paginates(client: TestClient, settings: Settings) -> None:
    attack = register(settings, make_version(settings.data_dir, seed="1"), days_ago=3)
    attack_again = register(settings, make_version(settings.data_dir, seed="2"), days_ago=2)
    latency = make_incident(id="inc-2", kind="latency-drift", segment="llama-3.1-8b/chat/globex")
    slow = register(
        settings, make_version(settings.data_dir, source=latency, recipe_name="length-extremes"), days_ago=1
    )

    assert ids(client.get("/v1/datasets")) == [slow.id, attack_again.id, attack.id]
    assert ids(client.get("/v1/datasets", params={"incident_id": "inc-1"})) == [attack_again.id, attack.id]
    assert ids(client.get("/v1/datasets", params={"segment": "llama-3.1-8b"})) == [slow.id]
    assert ids(client.get("/v1/datasets", params={"segment": "llama-3.1-8b/chat/globex"})) == [slow.id]
    assert ids(client.get("/v1/datasets", params={"segment": "llama-3.1"})) == [], "prefixes are whole parts"
    assert ids(client.get("/v1/datasets", params={"technique": "base64_payload"})) == [attack_again.id, attack.id]
    between = {"created_after": (NOW - timedelta(days=2.5)).isoformat(), "created_before": NOW.isoformat()}
    assert ids(client.get("/v1/datasets", params=between)) == [slow.id, attack_again.id]
    assert ids(client.get("/v1/datasets", params={**between, "incident_id": "inc-1"})) == [attack_again.id]

    page = client.get("/v1/datasets", params={"limit": 1, "offset": 1})
    assert ids(page) == [attack_again.id] and page.headers["X-Total-Count"] == "3"
    assert page.headers["Link"] == '<?limit=1&offset=2>; rel="next"'
    filtered = client.get("/v1/datasets", params={"incident_id": "inc-1", "limit": 1})
    assert ids(filtered) == [attack_again.id] and filtered.headers["X-Total-Count"] == "2"
    assert client.get(f"/v1/datasets/{slow.id}").json()["lineage"]["segment"] == latency.segment


def test_downloads_are_checked_against_their_checksums(client: TestClient, settings: Settings) -> None:
    manifest = register(settings, make_version(settings.data_dir))
    folder = Path(manifest.path)
    for name in ("train.jsonl", "hf/train.parquet", "hf/README.md", "preference.jsonl", "manifest.json"):
        response = client.get(f"/v1/datasets/{manifest.id}/files/{name}")
        assert response.status_code == 200 and response.content == (folder / name).read_bytes()
    response = client.get(f"/v1/datasets/{manifest.id}/files/train.jsonl")
    assert response.headers["ETag"] == f'"{manifest.file("train.jsonl").sha256}"'
    assert response.headers["content-type"].startswith("application/jsonl")
    assert client.get(f"/v1/datasets/{manifest.id}/files/nope.txt").status_code == 404

    (folder / "train.jsonl").write_bytes((folder / "train.jsonl").read_bytes() + b'{"messages": []}\n')
    tampered = client.get(f"/v1/datasets/{manifest.id}/files/train.jsonl")
    assert tampered.status_code == 500 and b'{"messages": []}' not in tampered.content
    assert "checksum" in tampered.text and manifest.file("train.jsonl").sha256 in tampered.text
    assert client.get(f"/v1/datasets/{manifest.id}/files/samples.parquet").status_code == 200


def test_download_from_an_fsspec_store(client: TestClient, settings: Settings) -> None:
    store = DatasetStore(f"memory://driftloop-api-{uuid.uuid4().hex[:8]}")
    manifest = register(settings, make_version(store=store))
    response = client.get(f"/v1/datasets/{manifest.id}/files/hf/train.parquet")
    assert response.status_code == 200 and response.content == store.read(manifest.id, "hf/train.parquet")


def test_diff_reports_rows_counts_and_quality(client: TestClient, settings: Settings) -> None:
    base = register(settings, make_version(settings.data_dir, seed="1", rows=60))
    other = register(settings, make_version(settings.data_dir, seed="2", rows=90))
    response = client.get(f"/v1/datasets/{base.id}/diff/{other.id}")
    assert response.status_code == 200, response.text
    diff = response.json()

    def sample_ids(manifest: DatasetManifest) -> set[str]:
        table = pq.read_table(io.BytesIO((Path(manifest.path) / "samples.parquet").read_bytes()))
        return set(table["id"].to_pylist()) | {r["id"] for r in heldout_rows(manifest)}

    base_ids, other_ids = sample_ids(base), sample_ids(other)
    assert {r["id"] for r in diff["only_in_base"]} == base_ids - other_ids
    assert {r["id"] for r in diff["only_in_other"]} == other_ids - base_ids
    assert diff["in_both"] == len(base_ids & other_ids)
    assert all({"prompt", "technique", "expected"} <= set(r) for r in diff["only_in_other"])
    for technique, change in diff["by_technique"].items():
        before, after = base.quality.by_technique.get(technique, 0), other.quality.by_technique.get(technique, 0)
        assert change == {"base": before, "other": after, "delta": after - before}
    assert sum(c["delta"] for c in diff["by_expected"].values()) == other.quality.rows - base.quality.rows
    assert len(base_ids) == base.rows + base.heldout and base.heldout, "the diff covers the held-out rows too"
    rows = base.quality.rows, other.quality.rows
    assert diff["quality"]["rows"] == {"base": rows[0], "other": rows[1], "delta": rows[1] - rows[0]}
    distinct = diff["quality"]["distinct_2"]
    assert distinct["delta"] == pytest.approx(other.quality.distinct_2 - base.quality.distinct_2)

    same = client.get(f"/v1/datasets/{base.id}/diff/{base.id}").json()
    assert same["only_in_base"] == same["only_in_other"] == [] and same["in_both"] == base.rows + base.heldout
    assert all(c["delta"] == 0 for c in same["by_technique"].values())
    assert client.get(f"/v1/datasets/{base.id}/diff/ds-0000000000000000").status_code == 404


def test_ack_closes_the_finetune_request_once(client: TestClient, settings: Settings) -> None:
    manifest = register(settings, make_version(settings.data_dir))
    assert open_request(settings, manifest.id)
    assert client.get(f"/v1/datasets/{manifest.id}/ack").status_code == 404
    first = client.post(f"/v1/datasets/{manifest.id}/ack", json={"consumer": "trainer-a"})
    assert first.status_code == 200 and first.json()["consumer"] == "trainer-a"
    again = client.post(f"/v1/datasets/{manifest.id}/ack", json={"consumer": "trainer-b"})
    assert again.json() == first.json(), "the first ack is kept"
    assert client.get(f"/v1/datasets/{manifest.id}/ack").json() == first.json()
    assert not open_request(settings, manifest.id)
    assert client.post("/v1/datasets/ds-0000000000000000/ack").status_code == 404


def test_retention_deletes_only_acknowledged_versions_beyond_the_policy(client: TestClient, settings: Settings) -> None:
    versions = [register(settings, make_version(settings.data_dir, seed=str(s)), days_ago=10 - s) for s in range(5)]
    oldest, old, middle, recent, newest = versions
    for acked in (oldest, middle, newest):
        assert client.post(f"/v1/datasets/{acked.id}/ack", json={"consumer": "trainer"}).status_code == 200

    nothing = client.post("/v1/datasets/retention").json()
    assert nothing["deleted"] == [] and len(nothing["kept"]) == 5, "no policy configured: nothing goes"
    policy = {"max_versions": 2}
    dry = client.post("/v1/datasets/retention", params={"dry_run": "true"}, json=policy).json()
    assert {d["dataset_id"] for d in dry["deleted"]} == {oldest.id, middle.id}
    assert ids(client.get("/v1/datasets")) == [v.id for v in reversed(versions)], "a dry run deletes nothing"

    report = client.post("/v1/datasets/retention", json=policy)
    assert report.status_code == 200, report.text
    deleted = {d["dataset_id"]: d["reason"] for d in report.json()["deleted"]}
    kept = {d["dataset_id"]: d["reason"] for d in report.json()["kept"]}
    assert set(deleted) == {oldest.id, middle.id}
    assert "beyond the newest 2" in deleted[oldest.id]
    assert "beyond the newest 2" in kept[old.id] and "open" in kept[old.id], "an unacknowledged version stays"
    assert kept[newest.id] == kept[recent.id] == "within the policy"
    assert ids(client.get("/v1/datasets")) == [newest.id, recent.id, old.id]
    for gone in (oldest, middle):
        assert not Path(gone.path).exists() and client.get(f"/v1/datasets/{gone.id}").status_code == 404
        assert open_request(settings, gone.id), "its ack is forgotten with it"
    assert DatasetStore(settings.data_dir / "datasets").ids() == sorted([old.id, recent.id, newest.id])

    client.app.state.settings = settings.model_copy(update={"retention_max_age_days": 7.5})
    by_age = client.post("/v1/datasets/retention").json()
    assert by_age["policy"] == {"max_versions": None, "max_age_days": 7.5}
    assert by_age["deleted"] == [], "only acknowledged versions go, and the old ones are not acknowledged"
    assert client.post(f"/v1/datasets/{old.id}/ack").status_code == 200
    by_age = client.post("/v1/datasets/retention").json()
    assert [d["dataset_id"] for d in by_age["deleted"]] == [old.id]
    assert "older than 7.5 days" in by_age["deleted"][0]["reason"]
    assert ids(client.get("/v1/datasets")) == [newest.id, recent.id]


def test_ack_store_tracks_open_requests(settings: Settings) -> None:
    async def go() -> None:
        redis = Redis.from_url(settings.redis_url)
        try:
            acks = AckStore(redis)
            assert await acks.is_open("ds-1") and await acks.get("ds-1") is None
            ack = await acks.ack("ds-1", "trainer")
            assert not await acks.is_open("ds-1") and (await acks.ack("ds-1", "other")) == ack
            await acks.forget("ds-1")
            assert await acks.is_open("ds-1")
        finally:
            await redis.aclose()

    asyncio.run(go())
