"""API security and conventions on a real Redis: tokens and scopes, audit, problem details, idempotency, size cap."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from driftloop.api import create_api
from driftloop.auth import Scope, hash_token
from driftloop.cli import app as cli
from driftloop.idempotency import Stored, fingerprint, slot_key
from driftloop.settings import Settings, get_settings

pytestmark = pytest.mark.integration
HOOK = {"url": "https://training.example.com/hooks"}
PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict:
    """``response`` is an RFC 9457 problem with ``status``; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["type"] == "about:blank" and body["title"]
    assert body["instance"].startswith("/")
    return body


def authorized(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def anonymous(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_api(settings)) as api:
        yield api


def test_no_token_or_a_bad_one_is_401_and_health_stays_open(anonymous: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert anonymous.get(path).status_code == 200, path
    missing = anonymous.get("/v1/incidents")
    assert assert_problem(missing, 401)["detail"] == "a bearer token is required"
    assert missing.headers["www-authenticate"] == "Bearer"
    for header in ("Bearer dl_not-a-token", "Basic dXNlcjpwYXNz", "Bearer "):
        bad = anonymous.post("/v1/webhooks", json=HOOK, headers={"Authorization": header})
        assert_problem(bad, 401)
        assert bad.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert anonymous.get("/v1/no-such-route").status_code == 401  # routes are not revealed to strangers


def test_scopes_nest_read_then_operate_then_admin(make_client: Callable[..., TestClient]) -> None:
    with make_client("read") as reader, make_client("operate") as operator, make_client("admin") as admin:
        assert reader.get("/v1/incidents").status_code == 200
        refused = reader.post("/v1/webhooks", json=HOOK)
        assert "operate" in assert_problem(refused, 403)["detail"]
        assert refused.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="operate"'
        assert operator.post("/v1/webhooks", json=HOOK).status_code == 201
        assert operator.get("/v1/webhooks").status_code == 200
        for api in (reader, operator):
            assert_problem(api.get("/v1/tokens"), 403)
            assert_problem(api.get("/v1/audit"), 403)
            assert_problem(api.post("/v1/tokens", json={"name": "x"}), 403)
        assert admin.get("/v1/tokens").status_code == 200 and admin.get("/v1/audit").status_code == 200
        assert admin.post("/v1/webhooks", json=HOOK).status_code == 201


def test_whoami_names_the_calling_token_and_its_scopes(
    make_client: Callable[..., TestClient], anonymous: TestClient
) -> None:
    with make_client("read", name="dashboard") as reader, make_client("operate", name="ci-bot") as operator:
        assert reader.get("/v1/whoami").json() == {"name": "dashboard", "scopes": ["read"]}
        assert operator.get("/v1/whoami").json() == {"name": "ci-bot", "scopes": ["read", "operate"]}
    assert_problem(anonymous.get("/v1/whoami"), 401)


def test_tokens_are_created_listed_and_revoked_and_stored_only_as_hashes(
    client: TestClient, anonymous: TestClient, settings: Settings
) -> None:
    created = client.post("/v1/tokens", json={"name": "trainer", "scopes": ["operate"]})
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("dl_") and len(token) > 40
    assert created.json()["scopes"] == ["read", "operate"]
    assert_problem(client.post("/v1/tokens", json={"name": "trainer"}), 409)
    assert_problem(client.post("/v1/tokens", json={"name": "bootstrap"}), 409)
    assert_problem(client.post("/v1/tokens", json={"name": "no spaces"}), 422)

    listed = {t["name"]: t for t in client.get("/v1/tokens").json()}
    assert set(listed) == {"test-admin", "trainer"} and set(listed["trainer"]) == {"name", "scopes", "created_at"}
    assert anonymous.get("/v1/jobs", headers=authorized(token)).status_code == 200

    store = redis.Redis.from_url(settings.redis_url)
    dump = b"".join([k + (store.dump(k) or b"") for k in store.keys("*")])
    assert token.encode() not in dump

    assert client.delete("/v1/tokens/trainer").status_code == 204
    assert_problem(anonymous.get("/v1/jobs", headers=authorized(token)), 401)
    assert_problem(client.delete("/v1/tokens/trainer"), 404)
    assert [t["name"] for t in client.get("/v1/tokens").json()] == ["test-admin"]


def test_the_bootstrap_admin_token_comes_from_settings(settings: Settings) -> None:
    secret = "s3cret-bootstrap-" + uuid.uuid4().hex
    with TestClient(create_api(settings.model_copy(update={"admin_token": SecretStr(secret)}))) as api:
        created = api.post("/v1/tokens", json={"name": "ops", "scopes": ["admin"]}, headers=authorized(secret))
        assert created.status_code == 201
        [entry] = api.get("/v1/audit", headers=authorized(secret)).json()
        assert entry["who"] == "bootstrap" and entry["path"] == "/v1/tokens"
    store = redis.Redis.from_url(settings.redis_url)
    assert secret.encode() not in b"".join(store.dump(k) or b"" for k in store.keys("*"))


def test_every_change_is_audited_with_who_what_when_and_where(make_client: Callable[..., TestClient]) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    with make_client("operate", name="ci-bot") as operator, make_client("admin", name="auditor") as admin:
        operator.post("/v1/webhooks", json=HOOK)
        operator.post("/v1/webhooks", json={"url": "not a url"})
        operator.get("/v1/webhooks")
        operator.delete("/v1/tokens/nobody")  # refused (403), still audited: it passed authentication
        entries = admin.get("/v1/audit").json()
        assert [(e["who"], e["method"], e["path"], e["status"]) for e in entries] == [
            ("ci-bot", "DELETE", "/v1/tokens/nobody", 403),
            ("ci-bot", "POST", "/v1/webhooks", 422),
            ("ci-bot", "POST", "/v1/webhooks", 201),
        ]
        assert all(before <= datetime.fromisoformat(e["at"]) <= datetime.now(UTC) for e in entries)
        assert entries[0]["client_ip"] == "testclient"
        page = admin.get("/v1/audit?limit=2")
        assert len(page.json()) == 2 and page.headers["x-total-count"] == "3"
        assert page.headers["link"] == '<?limit=2&offset=2>; rel="next"'
        assert admin.get("/v1/audit?limit=2&offset=2").json() == entries[2:]


def test_errors_are_problem_details(client: TestClient) -> None:
    assert assert_problem(client.get("/v1/jobs/nope"), 404)["detail"] == "no job nope"
    assert "detail" not in assert_problem(client.get("/v1/nothing-here"), 404)
    not_allowed = client.put("/v1/incidents")
    assert_problem(not_allowed, 405)
    assert not_allowed.headers["allow"] == "GET"
    invalid = assert_problem(client.get("/v1/incidents?limit=0&offset=-1"), 422)
    assert {tuple(e["loc"]) for e in invalid["errors"]} == {("query", "limit"), ("query", "offset")}
    assert all(set(e) == {"loc", "msg", "type"} for e in invalid["errors"])
    assert_problem(client.post("/v1/webhooks", content=b"{not json", headers={"content-type": "application/json"}), 422)


def test_domain_errors_map_to_statuses_and_internals_do_not_leak(
    settings: Settings, issue_token: Callable[[str, Scope], str]
) -> None:
    api = create_api(settings)
    raised = {
        "value": ValueError("limit must be positive"),
        "key": KeyError("job-7"),
        "file": FileNotFoundError(2, "No such file or directory", "/srv/secret/dir/samples.parquet"),
        "permission": PermissionError("dataset is frozen"),
        "crash": RuntimeError("password=hunter2 at /srv/secret"),
    }

    @api.get("/v1/raise/{kind}")
    async def fail(kind: str) -> None:
        raise raised[kind]

    token = issue_token("raiser", Scope.read)
    with TestClient(api, headers=authorized(token), raise_server_exceptions=False) as raiser:
        assert assert_problem(raiser.get("/v1/raise/value"), 400)["detail"] == "limit must be positive"
        assert assert_problem(raiser.get("/v1/raise/key"), 404)["detail"] == "not found: job-7"
        assert (
            assert_problem(raiser.get("/v1/raise/file"), 404)["detail"] == "No such file or directory: samples.parquet"
        )
        assert assert_problem(raiser.get("/v1/raise/permission"), 403)["detail"] == "dataset is frozen"
        crash = raiser.get("/v1/raise/crash")
        assert_problem(crash, 500)
        assert "hunter2" not in crash.text and "secret" not in crash.text and "RuntimeError" not in crash.text


def test_bodies_over_the_limit_are_413(settings: Settings, issue_token: Callable[[str, Scope], str]) -> None:
    small = settings.model_copy(update={"max_request_bytes": 64})
    token = issue_token("writer", Scope.operate)
    big = {"url": "https://training.example.com/" + "x" * 100}

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        yield b'{"url": "https://training.example.com/'
        yield b"x" * 100 + b'"}'

    with TestClient(create_api(small), headers=authorized(token)) as api:
        assert "64 bytes" in assert_problem(api.post("/v1/webhooks", json=big), 413)["detail"]
        assert_problem(api.post("/v1/webhooks", content=chunks()), 413)
        assert_problem(api.post("/v1/webhooks", content=chunks(), headers={"Idempotency-Key": "k"}), 413)
        assert api.post("/v1/webhooks", json={"url": "https://t.example.com/"}).status_code == 201


def test_idempotency_key_replays_the_first_response(
    settings: Settings, issue_token: Callable[[str, Scope], str]
) -> None:
    api = create_api(settings)
    calls: list[int] = []

    @api.post("/v1/things", status_code=201)
    async def create_thing(thing: dict[str, str]) -> dict[str, int | str]:
        calls.append(1)
        return {"calls": len(calls), **thing}

    other = authorized(issue_token("other", Scope.operate))
    with TestClient(api, headers=authorized(issue_token("first", Scope.operate))) as client:
        first = client.post("/v1/things", json={"a": "1", "b": "2"}, headers={"Idempotency-Key": "thing-1"})
        assert first.status_code == 201 and "idempotent-replayed" not in first.headers
        again = client.post(
            "/v1/things",
            content=b'{ "b" : "2", "a": "1" }',
            headers={"Idempotency-Key": "thing-1", "content-type": "application/json"},
        )
        assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json() and again.headers["content-type"] == "application/json"
        assert len(calls) == 1

        reused = client.post("/v1/things", json={"a": "other"}, headers={"Idempotency-Key": "thing-1"})
        assert "another request body" in assert_problem(reused, 422)["detail"]
        assert_problem(client.post("/v1/things", json={}, headers={"Idempotency-Key": "k" * 256}), 400)

        invalid = client.post("/v1/things", json={"a": 1}, headers={"Idempotency-Key": "bad"})
        replayed = client.post("/v1/things", json={"a": 1}, headers={"Idempotency-Key": "bad"})
        assert invalid.status_code == replayed.status_code == 422 and replayed.json() == invalid.json()
        assert replayed.headers["content-type"] == PROBLEM

        # keys belong to a token: another one's same key is a new request
        new = client.post("/v1/things", json={"a": "1", "b": "2"}, headers={**other, "Idempotency-Key": "thing-1"})
        assert new.json()["calls"] == 2 and "idempotent-replayed" not in new.headers


def test_openapi_declares_bearer_security_and_problems(anonymous: TestClient) -> None:
    document = anonymous.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"] == {
        **document["components"]["securitySchemes"]["bearer"],
        "type": "http",
        "scheme": "bearer",
    }
    assert document["security"] == [{"bearer": []}]
    assert document["paths"]["/healthz"]["get"]["security"] == []
    webhook = document["paths"]["/v1/webhooks"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in webhook["parameters"]}
    for status in ("401", "403", "413", "422", "4XX", "5XX"):
        assert set(webhook["responses"][status]["content"]) == {PROBLEM}
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_cli_creates_lists_and_revokes_tokens(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_REDIS_URL", settings.redis_url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        created = runner.invoke(cli, ["token", "create", "--name", "grafana", "--scope", "read"])
        assert created.exit_code == 0, created.output
        token = next(word for word in created.output.split() if word.startswith("dl_"))
        listed = runner.invoke(cli, ["token", "list"])
        assert listed.exit_code == 0 and "grafana" in listed.output and token not in listed.output
        assert runner.invoke(cli, ["token", "create", "--name", "grafana"]).exit_code == 1
        with TestClient(create_api(settings), headers=authorized(token)) as api:
            assert api.get("/v1/incidents").status_code == 200
            assert_problem(api.post("/v1/webhooks", json=HOOK), 403)
            assert runner.invoke(cli, ["token", "revoke", "grafana"]).exit_code == 0
            assert_problem(api.get("/v1/incidents"), 401)
    finally:
        get_settings.cache_clear()


def test_idempotency_keeps_no_server_error_and_refuses_a_key_in_flight(
    settings: Settings, issue_token: Callable[[str, Scope], str]
) -> None:
    api = create_api(settings)
    calls: list[int] = []

    @api.post("/v1/flaky")
    async def flaky() -> dict[str, int]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first call fails")
        return {"calls": len(calls)}

    token = issue_token("retrier", Scope.operate)
    with TestClient(api, headers=authorized(token), raise_server_exceptions=False) as retrier:
        key = {"Idempotency-Key": "retry-1"}
        assert_problem(retrier.post("/v1/flaky", headers=key), 500)
        second = retrier.post("/v1/flaky", headers=key)  # a server error was not kept: this runs again
        assert second.json() == {"calls": 2} and "idempotent-replayed" not in second.headers
        third = retrier.post("/v1/flaky", headers=key)
        assert third.json() == {"calls": 2} and third.headers["idempotent-replayed"] == "true"

        pending = Stored(fingerprint=fingerprint(b"")).model_dump_json()
        slot = slot_key(hash_token(token), "busy", "POST", "/v1/flaky")
        redis.Redis.from_url(settings.redis_url).set(slot, pending)
        assert (
            "in progress"
            in assert_problem(retrier.post("/v1/flaky", headers={"Idempotency-Key": "busy"}), 409)["detail"]
        )
    assert len(calls) == 2
