"""The console's session, pages and forms over HTTP on the real Redis: the cookie opens the console only (never
the JSON API), bad or revoked tokens and foreign redirects are refused, and the job, dead-letter and stress pages
act through the API's functions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from core import keys
from devtools.receiver import WebhookReceiver
from driftloop.api import create_api
from driftloop.auth import Scope, TokenStore
from driftloop.settings import Settings
from feedback import WebhookCreate, register
from feedback.dead_letters import DeadLetter, bury, dead_letter_id
from feedback.jobs import submit
from monitor.records import incidents
from tests.factories import make_incident
from tests.integration.test_incidents_api import on_redis
from validation.results import RunSummary
from validation.scoring import Behaviour, Score

pytestmark = pytest.mark.integration


@pytest.fixture
def browser(settings: Settings) -> Iterator[TestClient]:
    """The API as a browser meets it over HTTPS (so the Secure cookie is sent back), not logged in."""
    with TestClient(create_api(settings), base_url="https://testserver") as client:
        yield client


def log_in(browser: TestClient, token: str) -> None:
    assert browser.post("/console/login", data={"token": token}, follow_redirects=False).status_code == 303


def csrf_of(page: str) -> str:
    """The CSRF token in a page's forms."""
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_the_cookie_opens_the_console_only_and_never_for_a_foreign_redirect(
    settings: Settings, browser: TestClient, issue_token: Callable[[str, Scope], str]
) -> None:
    token = issue_token("ops", Scope.operate)
    away = browser.get("/console/jobs?offset=0", follow_redirects=False)
    assert (away.status_code, away.headers["location"]) == (303, "/console/login?next=%2Fconsole%2Fjobs%3Foffset%3D0")
    refused = browser.post("/console/login", data={"token": "dl_" + "x" * 43})
    assert refused.status_code == 401 and "not valid" in refused.text and "driftloop_console" not in browser.cookies

    elsewhere = browser.post("/console/login", data={"token": token}, headers={"Origin": "https://evil.example"})
    assert elsewhere.status_code == 403 and "driftloop_console" not in browser.cookies  # no login planted
    for target in ("https://evil.example/", "//evil.example/", "/console//evil.example", "/v1/tokens"):
        landed = browser.post("/console/login", data={"token": token, "next": target}, follow_redirects=False)
        assert landed.headers["location"] == "/console/incidents", target
    assert browser.get("/v1/incidents").status_code == 401  # the JSON API wants its bearer header, not the cookie

    on_redis(settings, lambda r: incidents(r).create(make_incident()))
    page = browser.get("/console/incidents", params={"status": "", "segment": ""})  # the filter form's "any"
    assert page.status_code == 200 and "ops" in page.text and "/console/incidents/inc-1" in page.text
    assert "/console/incidents/inc-1" not in browser.get("/console/incidents?status=resolved").text
    filtered = browser.get("/console/incidents", params={"status": "open", "segment": "gpt-4o-mini/chat/acme"})
    assert "/console/incidents/inc-1" in filtered.text
    assert browser.get("/console/incidents?status=bogus").status_code == 400
    assert "script-src" not in page.headers["content-security-policy"] and page.headers["cache-control"] == "no-store"
    assert not [path for path in browser.app.openapi()["paths"] if path.startswith("/console")]

    assert on_redis(settings, lambda r: TokenStore(r).revoke("ops"))
    revoked = browser.get("/console/incidents", follow_redirects=False)
    assert revoked.status_code == 303 and revoked.headers["location"].startswith("/console/login")
    assert 'driftloop_console=""' in revoked.headers["set-cookie"]


def test_logging_out_ends_the_session(browser: TestClient, issue_token: Callable[[str, Scope], str]) -> None:
    log_in(browser, issue_token("ops", Scope.read))
    out = browser.post("/console/logout", follow_redirects=False)
    assert out.status_code == 303 and 'driftloop_console=""' in out.headers["set-cookie"]
    assert browser.get("/console/jobs", follow_redirects=False).status_code == 303


def test_a_queued_job_is_cancelled_from_the_jobs_page(
    settings: Settings, browser: TestClient, issue_token: Callable[[str, Scope], str]
) -> None:
    job = on_redis(settings, lambda r: submit(r, make_incident(), "attack-hardening"))
    log_in(browser, issue_token("ops", Scope.operate))
    page = browser.get("/console/jobs").text
    assert "queued" in page and f"/console/jobs/{job.id}/cancel" in page
    csrf = csrf_of(page)
    done = browser.post(f"/console/jobs/{job.id}/cancel", data={"csrf": csrf})
    assert done.status_code == 200 and f"Cancellation of job {job.id} requested." in done.text
    assert "cancelled" in done.text and f"/console/jobs/{job.id}/cancel" not in done.text
    unknown = browser.post("/console/jobs/nope/cancel", data={"csrf": csrf})
    assert "Not done: no job nope" in unknown.text  # the API's 404, told on the page


def test_a_dead_letter_is_replayed_from_the_webhooks_page(
    settings: Settings, browser: TestClient, issue_token: Callable[[str, Scope], str]
) -> None:
    with WebhookReceiver(secret=None) as receiver:

        async def seed(redis: Redis) -> str:
            hook = await register(redis, WebhookCreate(url=receiver.url, event_types=["*"]))
            receiver.secret = hook.secret
            payload = {"type": "job.failed", "timestamp": "2026-01-01T00:00:00Z", "data": {"id": "job-1"}}
            letter = DeadLetter(
                id=dead_letter_id(hook.id, "job-1"),
                webhook_id=hook.id,
                message_id="job-1",
                event_type="job.failed",
                payload=payload,
                attempts=5,
                last_error="503 from the receiver",
            )
            return (await bury(redis, letter)).id

        letter_id = on_redis(settings, seed)
        log_in(browser, issue_token("ops", Scope.operate))
        page = browser.get("/console/webhooks").text
        assert "503 from the receiver" in page
        done = browser.post(f"/console/webhooks/dead-letters/{letter_id}/replay", data={"csrf": csrf_of(page)})
        assert f"Dead letter {letter_id} delivered." in done.text and "replayed" in done.text
    assert [(r.message_id, r.verified) for r in receiver.received] == [("job-1", True)]


def test_the_stress_page_shows_each_suites_last_run(
    settings: Settings, browser: TestClient, read_client: TestClient, issue_token: Callable[[str, Scope], str]
) -> None:
    scores = [
        Score(
            probe_id=f"p{i}",
            family="jailbreak",
            segment="gpt-4o-mini/chat/acme",
            expected="refuse",
            behaviour=Behaviour.REFUSED if i < 7 else Behaviour.ANSWERED,
            passed=i < 7,
            attack_success=None,
            reason="",
        )
        for i in range(10)
    ]
    summary = RunSummary.of("core", "v3", "smollm2", "run-9", scores)
    on_redis(settings, lambda r: r.set(keys.stress_last_run("core"), summary.model_dump_json()))
    assert [run["run_id"] for run in read_client.get("/v1/stress-runs").json()] == ["run-9"]
    assert read_client.get("/v1/stress-runs/core").json()["families"]["jailbreak"]["pass_rate"]["successes"] == 7
    assert read_client.get("/v1/stress-runs/other").status_code == 404
    log_in(browser, issue_token("viewer", Scope.read))
    page = browser.get("/console/stress").text
    assert "core@v3" in page and "jailbreak" in page and "7/10 = 0.7" in page
