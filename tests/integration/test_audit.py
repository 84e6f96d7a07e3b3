"""The audit log on a real Redis: the client IP cannot be forged, history cannot be flushed, refusals are recorded."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from redis.asyncio import Redis as AsyncRedis

from driftloop.api import create_api
from driftloop.audit import AuditEntry, AuditLog
from driftloop.auth import Scope, hash_token
from driftloop.settings import Settings
from tests.integration.helpers import served

pytestmark = pytest.mark.integration
FORGED = "203.0.113.66"


def audit(api: TestClient) -> list[dict]:
    """Every audit entry, newest first, read page by page as an admin would."""
    entries: list[dict] = []
    while True:
        page = api.get("/v1/audit", params={"limit": 500, "offset": len(entries)})
        entries += page.json()
        if len(entries) >= int(page.headers["X-Total-Count"]):
            return entries


def test_a_forged_x_forwarded_for_is_the_client_ip_only_when_a_trusted_proxy_sent_it(
    settings: Settings, issue_token: Callable[[str, Scope], str], client: TestClient
) -> None:
    headers = {"Authorization": f"Bearer {issue_token('ops', Scope.operate)}"}
    with served(settings) as url:  # no trusted proxies: the peer is the client, whatever it says
        httpx.post(f"{url}/v1/forged", headers={**headers, "X-Forwarded-For": FORGED})
    trusted = settings.model_copy(update={"trusted_proxies": ["127.0.0.0/8"]})
    with served(trusted) as url:  # a proxy on 127.0.0.1: its header names the client, the hop before it does not
        httpx.post(f"{url}/v1/proxied", headers={**headers, "X-Forwarded-For": FORGED})
        httpx.post(f"{url}/v1/chained", headers={**headers, "X-Forwarded-For": f"10.9.9.9, {FORGED}"})
    ips = {entry["path"]: entry["client_ip"] for entry in audit(client)}
    assert ips == {"/v1/forged": "127.0.0.1", "/v1/proxied": FORGED, "/v1/chained": FORGED}


@pytest.mark.slow  # 10,001 requests
def test_cheap_calls_do_not_push_out_history_younger_than_the_retention(
    client: TestClient, operate_client: TestClient
) -> None:
    assert client.post("/v1/tokens", json={"name": "trainer", "scopes": ["read"]}).status_code == 201
    for _ in range(10_001):
        assert operate_client.post("/v1/nothing").status_code == 404
    entries = audit(client)
    assert len(entries) == 10_002
    assert (entries[-1]["who"], entries[-1]["path"], entries[-1]["status"]) == ("test-admin", "/v1/tokens", 201)


def test_entries_older_than_the_retention_are_dropped_by_the_next_write(settings: Settings, client: TestClient) -> None:
    old = AuditEntry(who="ops", method="POST", path="/v1/tokens", status=201, at=datetime.now(UTC) - timedelta(days=91))
    kept = old.model_copy(update={"at": datetime.now(UTC) - timedelta(days=89), "path": "/v1/webhooks"})

    async def write() -> None:
        store = AsyncRedis.from_url(settings.redis_url)
        try:
            for entry in (old, kept):
                await AuditLog(store).record(entry, timedelta(days=365))
        finally:
            await store.aclose()

    asyncio.run(write())
    assert [entry["path"] for entry in audit(client)] == ["/v1/webhooks", "/v1/tokens"]
    client.post("/v1/nothing")  # the default retention is 90 days
    assert [entry["path"] for entry in audit(client)] == ["/v1/nothing", "/v1/webhooks"]


def test_refused_calls_are_audited_without_the_token(
    settings: Settings, client: TestClient, read_client: TestClient
) -> None:
    with TestClient(create_api(settings)) as stranger:
        assert stranger.get("/v1/incidents").status_code == 401
        assert stranger.delete("/v1/tokens/test-admin", headers={"Authorization": "Bearer dl_guess"}).status_code == 401
    assert read_client.post("/v1/webhooks", json={"url": "https://example.com/hook"}).status_code == 403
    assert read_client.get("/v1/audit").status_code == 403
    refused = [
        (e["who"], e["method"], e["path"], e["status"], e["lacked_scope"], e["client_ip"]) for e in audit(client)
    ]
    assert refused == [
        ("test-reader", "GET", "/v1/audit", 403, "admin", "testclient"),
        ("test-reader", "POST", "/v1/webhooks", 403, "operate", "testclient"),
        (f"sha256:{hash_token('dl_guess')[:12]}", "DELETE", "/v1/tokens/test-admin", 401, None, "testclient"),
        ("anonymous", "GET", "/v1/incidents", 401, None, "testclient"),
    ]
    store = redis.Redis.from_url(settings.redis_url)
    assert b"dl_guess" not in b"".join(store.dump(k) or b"" for k in store.keys("*"))


def test_a_flood_of_401s_takes_at_most_its_quota_a_minute(settings: Settings, make_client: Callable) -> None:
    capped = settings.model_copy(update={"audit_unauthenticated_per_minute": 3})
    with TestClient(create_api(capped)) as stranger:
        for attempt in range(20):
            stranger.post("/v1/webhooks", headers={"Authorization": f"Bearer dl_guess-{attempt}"})
    with make_client(Scope.read, name="reader") as reader:  # a known token's refusals are not part of the quota
        assert reader.post("/v1/webhooks").status_code == 403
    with make_client(Scope.admin) as admin:
        entries = audit(admin)
    per_minute = Counter(entry["at"][:16] for entry in entries if entry["status"] == 401)
    assert 3 <= sum(per_minute.values()) <= 6 and max(per_minute.values()) == 3
    assert [(e["who"], e["status"]) for e in entries if e["status"] == 403] == [("reader", 403)]
