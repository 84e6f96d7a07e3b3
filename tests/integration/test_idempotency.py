"""``Idempotency-Key`` against an attacker, on a real Redis: a replay goes only to the token that made the first
request and only past its scope check, and a response that carries a secret is never stored."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from redis.asyncio import Redis as AsyncRedis

from core import keys
from driftloop.api import create_api
from driftloop.auth import Scope, TokenInfo, TokenStore, hash_token
from driftloop.idempotency import Stored
from driftloop.settings import Settings

pytestmark = pytest.mark.integration
HOOK = {"url": "https://training.example.com/hooks"}


def authorized(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def revoke(settings: Settings, name: str) -> None:
    async def run() -> None:
        async with AsyncRedis.from_url(settings.redis_url) as store:
            assert await TokenStore(store).revoke(name)

    asyncio.run(run())


@pytest.fixture
def store(settings: Settings) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(settings.redis_url) as connection:
        yield connection


def dump(store: redis.Redis) -> dict[str, bytes]:
    """Every string value in Redis, and for each stored response its decoded body under ``<key>#body``."""
    values: dict[str, bytes] = {}
    for key in store.scan_iter():
        name = key.decode()
        if store.type(key) != b"string":
            values[name] = repr(store.dump(key)).encode()
            continue
        values[name] = store.get(key) or b""
        if name.startswith(keys.idempotency("")):
            values[name + "#body"] = base64.b64decode(Stored.model_validate_json(values[name]).body)
    return values


def test_a_revoked_admin_reissued_with_operate_cannot_replay_its_admin_token(
    settings: Settings, issue_token: Callable[[str, Scope], str], store: redis.Redis
) -> None:
    """The issue's repro: ``alice`` (admin) mints an admin token under ``deploy-1``, is revoked and re-issued with
    operate; the new ``alice`` repeating the request is refused and sees no token."""
    key = {"Idempotency-Key": "deploy-1"}
    request = {"name": "svc-admin", "scopes": ["admin"]}
    with TestClient(create_api(settings), headers=authorized(issue_token("alice", Scope.admin))) as alice:
        minted = alice.post("/v1/tokens", json=request, headers=key)
        assert minted.status_code == 201
        secret = minted.json()["token"]
        revoke(settings, "alice")
    with TestClient(create_api(settings), headers=authorized(issue_token("alice", Scope.operate))) as alice:
        assert alice.post("/v1/tokens", json={"name": "other", "scopes": ["admin"]}).status_code == 403
        replay = alice.post("/v1/tokens", json=request, headers=key)
        assert replay.status_code == 403 and "idempotent-replayed" not in replay.headers
        assert secret not in replay.text
    for name, value in dump(store).items():
        assert secret.encode() not in value, name
        assert base64.b64encode(secret.encode()) not in value, name


def test_a_replay_needs_the_scope_of_the_route_now(
    settings: Settings, issue_token: Callable[[str, Scope], str], store: redis.Redis
) -> None:
    """A stored admin response is not replayed to the same token once its record no longer grants admin."""
    token = issue_token("carol", Scope.admin)
    key = {"Idempotency-Key": "taken-1"}
    with TestClient(create_api(settings), headers=authorized(token)) as carol:
        taken = carol.post("/v1/tokens", json={"name": "carol"}, headers=key)
        assert taken.status_code == 409
        assert carol.post("/v1/tokens", json={"name": "carol"}, headers=key).headers["idempotent-replayed"] == "true"
        record = TokenInfo.model_validate_json(store.get(keys.token(hash_token(token))))
        downgraded = record.model_copy(update={"scopes": Scope.operate.implied()})
        store.set(keys.token(hash_token(token)), downgraded.model_dump_json())
        again = carol.post("/v1/tokens", json={"name": "carol"}, headers=key)
        assert again.status_code == 403 and "idempotent-replayed" not in again.headers


def test_keys_belong_to_a_token_not_to_its_name(settings: Settings, issue_token: Callable[[str, Scope], str]) -> None:
    """A token re-issued under a revoked one's name does not get the revoked token's stored responses."""
    key = {"Idempotency-Key": "retention-1"}
    with TestClient(create_api(settings), headers=authorized(issue_token("dave", Scope.operate))) as dave:
        first = dave.post("/v1/datasets/retention?dry_run=true", json={"max_versions": 5}, headers=key)
        assert first.status_code == 200
        assert (
            dave.post("/v1/datasets/retention?dry_run=true", json={"max_versions": 5}, headers=key).headers[
                "idempotent-replayed"
            ]
            == "true"
        )
    revoke(settings, "dave")
    with TestClient(create_api(settings), headers=authorized(issue_token("dave", Scope.operate))) as dave:
        again = dave.post("/v1/datasets/retention?dry_run=true", json={"max_versions": 5}, headers=key)
        assert again.status_code == 200 and "idempotent-replayed" not in again.headers


def test_responses_carrying_a_secret_are_never_stored(client: TestClient, store: redis.Redis) -> None:
    """New bearer tokens and ``whsec_`` secrets are shown once: marked ``no-store``, not kept for a replay; a retry
    is a 409 that repeats neither the secret nor the effect."""
    token_key, hook_key = {"Idempotency-Key": "mint-1"}, {"Idempotency-Key": "hook-1"}
    minted = client.post("/v1/tokens", json={"name": "svc", "scopes": ["read"]}, headers=token_key)
    hooked = client.post("/v1/webhooks", json=HOOK, headers=hook_key)
    assert minted.status_code == hooked.status_code == 201
    assert minted.headers["cache-control"] == hooked.headers["cache-control"] == "no-store"
    bearer, whsec = minted.json()["token"], hooked.json()["secret"]

    retries = (("/v1/tokens", {"name": "svc", "scopes": ["read"]}, token_key), ("/v1/webhooks", HOOK, hook_key))
    for path, body, key in retries:
        retry = client.post(path, json=body, headers=key)
        assert retry.status_code == 409 and "secret" in retry.json()["detail"]
        assert bearer not in retry.text and whsec not in retry.text
    assert len(client.get("/v1/webhooks").json()) == 1

    records = {name: value for name, value in dump(store).items() if name.startswith(keys.idempotency(""))}
    assert records, "the requests were kept as done"
    for name, value in dump(store).items():
        assert bearer.encode() not in value and base64.b64encode(bearer.encode()) not in value, name
    for name, value in records.items():
        assert b"whsec_" not in value and whsec.encode() not in value, name
