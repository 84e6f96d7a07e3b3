"""Webhook secrets at rest on a real Redis: sealed (neither Redis's keys and values nor its files on disk show
one), still signing deliveries that a real receiver verifies, readable across a key rotation; and no API or worker
without the keys."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr
from redis.asyncio import Redis
from typer.testing import CliRunner

from core.secrets import SecretBox, SecretKeysMissing, UnreadableSecret, new_key
from devtools.receiver import WebhookReceiver
from driftloop.api import create_api
from driftloop.auth import Scope
from driftloop.cli import app as cli
from driftloop.settings import Settings, get_settings
from feedback import Delivery, Dispatcher
from feedback.egress import EgressPolicy
from feedback.webhooks import Webhook, webhooks
from tests.integration.helpers import delivering, wait_for

pytestmark = pytest.mark.integration

GIVEN_SECRET = "whsec_" + base64.b64encode(b"a receiver's own 24 bytes").decode()


def keys_and_values(settings: Settings) -> bytes:
    """Every key of the test's Redis with its value, read by type."""
    client = redis.Redis.from_url(settings.redis_url)
    readers = {
        b"string": client.get,
        b"hash": lambda k: b" ".join(b"%s=%s" % pair for pair in client.hgetall(k).items()),
        b"list": lambda k: b" ".join(client.lrange(k, 0, -1)),
        b"set": lambda k: b" ".join(client.smembers(k)),
        b"zset": lambda k: b" ".join(client.zrange(k, 0, -1)),
        b"stream": lambda k: repr(client.xrange(k)).encode(),
    }
    return b"\n".join(key + b" " + readers[client.type(key)](key) for key in client.scan_iter(count=1000))


def files_on_disk(settings: Settings) -> bytes:
    """Every file in Redis's data directory (its append-only files among them)."""
    directory = Path(redis.Redis.from_url(settings.redis_url).config_get("dir")["dir"])
    return b"\n".join(path.read_bytes() for path in directory.rglob("*") if path.is_file())


def forms_of(secret: str) -> list[bytes]:
    """The secret, its base64 part and the key bytes that part encodes."""
    encoded = secret.removeprefix("whsec_")
    return [secret.encode(), encoded.encode(), base64.b64decode(encoded)]


def api_with_keys(settings: Settings, keys: str, token: str) -> TestClient:
    """A client of the API started with ``DRIFTLOOP_SECRET_KEYS=keys``."""
    keyed = settings.model_copy(update={"secret_keys": SecretStr(keys)})
    return TestClient(create_api(keyed), headers={"Authorization": f"Bearer {token}"})


def read_hook(settings: Settings, webhook_id: str, keys: str) -> Webhook | None:
    async def go() -> Webhook | None:
        client = Redis.from_url(settings.redis_url)
        try:
            return await webhooks(client, SecretBox.parse(keys)).get(webhook_id)
        finally:
            await client.aclose()

    return asyncio.run(go())


def deliver(settings: Settings, message_id: str) -> list[Delivery]:
    """``dataset.published`` for ``message_id`` to every subscriber, signed with the secrets the process's keys
    open: the deliveries, once the outbox has drained (through this process's loop or a running API's)."""

    async def go() -> list[Delivery]:
        client = Redis.from_url(settings.redis_url)
        try:
            dispatcher = Dispatcher(client, attempts=1, policy=EgressPolicy(allow_private=True))
            async with delivering(dispatcher):
                await dispatcher.dispatch("dataset.published", message_id, {"dataset_id": message_id})
            return [delivery for delivery in await dispatcher.log() if delivery.message_id == message_id]
        finally:
            await client.aclose()

    return asyncio.run(go())


def rotate(settings: Settings, keys: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """``driftloop secrets rotate`` with ``DRIFTLOOP_SECRET_KEYS=keys`` on the test's Redis: (exit code, output)."""
    monkeypatch.setenv("DRIFTLOOP_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("DRIFTLOOP_SECRET_KEYS", keys)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["secrets", "rotate"])
    finally:
        get_settings.cache_clear()
    return result.exit_code, " ".join(result.output.split())


def test_a_dump_of_redis_and_its_files_shows_no_webhook_secret(settings: Settings, client: TestClient) -> None:
    generated = client.post("/v1/webhooks", json={"url": "https://trainer.example.com/hooks"})
    given = client.post("/v1/webhooks", json={"url": "https://eval.example.com/hooks", "secret": GIVEN_SECRET})
    assert generated.status_code == given.status_code == 201
    secrets = [generated.json()["secret"], given.json()["secret"]]
    assert secrets[0].startswith("whsec_") and secrets[1] == GIVEN_SECRET

    record = f"driftloop:webhook:{given.json()['id']}".encode()

    def written() -> bytes | None:
        files = files_on_disk(settings)
        return files if record in files else None

    stored, on_disk = keys_and_values(settings), wait_for(written, 10, "the record in Redis's append-only file")
    assert record in stored
    for secret in secrets:
        for form in forms_of(secret):
            assert form not in stored, f"{form!r} is in Redis"
            assert form not in on_disk, f"{form!r} is in Redis's files"
    assert b"whsec_" not in stored


def test_deliveries_are_signed_with_the_secret_that_was_sealed(settings: Settings, client: TestClient) -> None:
    with WebhookReceiver(secret=None) as generated, WebhookReceiver(secret=GIVEN_SECRET) as given:
        created = client.post("/v1/webhooks", json={"url": generated.url, "event_types": ["dataset.published"]})
        generated.secret = created.json()["secret"]
        assert client.post("/v1/webhooks", json={"url": given.url, "secret": GIVEN_SECRET}).status_code == 201
        deliveries = deliver(settings, "ds-1")
    assert [(d.ok, d.status_code) for d in deliveries] == [(True, 204), (True, 204)]
    assert [(r.message_id, r.verified) for r in generated.received + given.received] == [("ds-1", True)] * 2


def test_rotation_reseals_every_secret_under_the_new_key(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, issue_token
) -> None:
    old, new = new_key(), new_key()
    token = issue_token("rotator", Scope.admin)
    with WebhookReceiver(secret=None) as receiver:
        with api_with_keys(settings, old, token) as api:
            created = api.post("/v1/webhooks", json={"url": receiver.url, "event_types": ["dataset.published"]})
        hook_id, receiver.secret = created.json()["id"], created.json()["secret"]
        assert read_hook(settings, hook_id, f"{new},{old}").secret == receiver.secret
        with pytest.raises(UnreadableSecret):
            read_hook(settings, hook_id, new)

        assert rotate(settings, f"{new},{old}", monkeypatch) == (
            0,
            "resealed 1 webhook secrets under the first key; the other keys can be dropped now",
        )
        assert read_hook(settings, hook_id, new).secret == receiver.secret
        with pytest.raises(UnreadableSecret):
            read_hook(settings, hook_id, old)

        with api_with_keys(settings, new, token) as api:
            assert [hook["id"] for hook in api.get("/v1/webhooks").json()] == [hook_id]
            [delivery] = deliver(settings, "ds-2")
    assert delivery.ok and [(r.message_id, r.verified) for r in receiver.received] == [("ds-2", True)]


def test_rotation_without_the_old_key_refuses_and_leaves_the_secret_to_that_key(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, issue_token
) -> None:
    old = new_key()
    with api_with_keys(settings, old, issue_token("rotator", Scope.admin)) as api:
        created = api.post("/v1/webhooks", json={"url": "https://trainer.example.com/hooks"}).json()
    code, said = rotate(settings, new_key(), monkeypatch)
    assert code == 1 and "a stored secret opens under none of DRIFTLOOP_SECRET_KEYS" in said
    assert read_hook(settings, created["id"], old).secret == created["secret"]


def test_the_api_is_not_created_without_keys(settings: Settings) -> None:
    with pytest.raises(SecretKeysMissing, match="DRIFTLOOP_SECRET_KEYS is not set"):
        create_api(settings.model_copy(update={"secret_keys": None}))


@pytest.mark.parametrize("verb", ["api", "worker"])
def test_api_and_worker_refuse_to_start_without_keys_and_say_how_to_make_one(
    settings: Settings, verb: str, tmp_path: Path
) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("DRIFTLOOP_")}
    env |= {"DRIFTLOOP_REDIS_URL": settings.redis_url, "DRIFTLOOP_KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    started = subprocess.run(
        [sys.executable, "-m", "driftloop", verb], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    said = " ".join(started.stdout.split())
    assert started.returncode == 2, started.stdout + started.stderr
    assert "DRIFTLOOP_SECRET_KEYS is not set" in said
    assert "driftloop secrets new-key" in said and "Fernet.generate_key()" in said


def test_a_key_from_new_key_is_a_valid_setting_and_anything_else_is_refused() -> None:
    made = CliRunner().invoke(cli, ["secrets", "new-key"])
    assert made.exit_code == 0
    key = made.output.strip()
    assert Settings(_env_file=None, secret_keys=f"{key},{new_key()}").secret_box().keys[0] == key
    with pytest.raises(ValueError, match="must be comma-separated Fernet keys"):
        Settings(_env_file=None, secret_keys="whsec_not-a-fernet-key")
