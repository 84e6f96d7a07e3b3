"""The on-call console in a real browser (Playwright driving Debian's chromium) against the API as ``driftloop api``
serves it, on the real Redis and broker: log in, acknowledge an incident, approve a dataset; a read token sees no
button and its posts are refused, as is a post without the form's CSRF token. Writes the screenshots of
``docs/``."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis

from driftloop.auth import Scope
from driftloop.kafka import ensure_topics
from driftloop.settings import Settings
from feedback.publishing import KafkaSend
from monitor.incidents import DriftIncident
from monitor.records import incidents
from monitor.reports import store_report
from tests.conftest import REQUIRE_SERVICES
from tests.factories import make_shift, traffic_incident
from tests.integration.helpers import run, runner, served, topic_messages

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).parents[2] / "docs"
VIEWPORT = {"width": 1366, "height": 860}


@contextmanager
def chromium() -> Iterator[object]:
    """Debian's chromium under Playwright; a skip without it, a failure when services are required. Playwright's
    sync API holds an event loop in this thread while it runs: seed Redis (``asyncio.run``) before."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        missing = f"playwright is not installed: {exc}"
    else:
        missing = None if shutil.which(CHROMIUM) else f"{CHROMIUM} is missing (Debian package chromium)"
    if missing:
        if REQUIRE_SERVICES:
            pytest.fail(f"DRIFTLOOP_REQUIRE_SERVICES=1 but {missing}")
        pytest.skip(missing)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def held_incident(settings: Settings) -> tuple[DriftIncident, str]:
    """An open attack wave stored as the worker stores it (with a report), and the dataset version its job wrote,
    held for approval; the version's id."""
    ensure_topics(settings)
    incident = traffic_incident(
        severity="critical",
        features=[
            make_shift(onset_event=310),
            make_shift(feature="refusal", reference_mean=0.04, current_mean=0.19, statistic=6.2, threshold=4.5),
            make_shift(feature="prompt_chars", reference_mean=310, current_mean=655, statistic=5.1, threshold=4.4),
        ],
    )

    async def scenario(redis: Redis, send: KafkaSend) -> str:
        assert await incidents(redis).create(incident)
        await store_report(redis, incident.id, "<!doctype html><title>report</title><h1>Evidently report</h1>")
        [job] = await runner(redis, send, settings.data_dir, "worker-a", require_approval=True).handle(incident)
        assert job.state == "succeeded" and job.dataset_id, job.error
        return job.dataset_id

    return incident, run(settings, scenario)


def log_in(context: object, url: str, token: str, page_path: str) -> object:
    """A page of ``context`` logged in with ``token`` through the login form, on ``page_path``."""
    page = context.new_page()
    page.goto(f"{url}{page_path}")
    assert "/console/login" in page.url  # no cookie yet: the console asks for a token first
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}{page_path}")
    return page


def test_on_call_logs_in_acknowledges_an_incident_and_approves_its_dataset(
    settings: Settings, issue_token: Callable[[str, Scope], str]
) -> None:
    incident, dataset_id = held_incident(settings)
    token = issue_token("on-call", Scope.operate)
    with served(settings) as url, chromium() as browser:
        context = browser.new_context(viewport=VIEWPORT)
        page = log_in(context, url, token, "/console/incidents")
        [cookie] = context.cookies()
        assert (cookie["name"], cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (
            "driftloop_console",
            True,
            True,
            "Strict",
        )
        assert page.locator("tbody tr").count() == 1
        page.click(f"a[href$='/incidents/{incident.id}']")
        assert page.locator("h1 .badge").inner_text() == "open"
        assert page.locator("svg.plot").count() == 3  # a statistic-against-threshold plot per moved feature
        assert page.get_by_text("refusal", exact=True).is_visible()
        page.fill("input[name=note]", "blocking the jailbreak source")
        page.click("button:has-text('Acknowledge')")
        page.wait_for_selector("h1 .badge.s-acknowledged")
        assert page.locator("[role=status]").inner_text() == "Acknowledged."
        assert page.get_by_text("by on-call: blocking the jailbreak source").is_visible()
        assert page.locator("button:has-text('Acknowledge')").count() == 0  # acknowledged: only Resolve remains
        page.screenshot(path=DOCS / "console-incident.png", full_page=True)

        report = context.new_page()
        report.goto(f"{url}/console/incidents/{incident.id}/report")
        assert report.locator("h1").inner_text() == "Evidently report"

        page.click(f"a[href$='/datasets/{dataset_id}']")
        assert page.locator("h1 .badge").inner_text() == "pending_approval"
        page.click("button:has-text('Approve and publish')")
        page.wait_for_selector("h1 .badge.st-published")
        page.screenshot(path=DOCS / "console-dataset.png", full_page=True)
        context.close()
    # no LLM endpoint here: the version is an evaluation set, published on approval but never sent to fine-tuning
    assert topic_messages(settings, settings.finetune_topic, idle_ms=500) == []


def test_a_read_token_sees_no_button_and_forged_posts_are_refused(
    settings: Settings, issue_token: Callable[[str, Scope], str]
) -> None:
    incident, dataset_id = held_incident(settings)
    viewer, operator = issue_token("viewer", Scope.read), issue_token("operator", Scope.operate)
    with served(settings) as url, chromium() as browser:
        context = browser.new_context(viewport=VIEWPORT)
        page = log_in(context, url, viewer, f"/console/incidents/{incident.id}")
        assert page.get_by_text("Your token can read only.").is_visible()
        for path in (f"/console/incidents/{incident.id}", f"/console/datasets/{dataset_id}", "/console/jobs"):
            page.goto(url + path)
            assert page.locator("main button, main form[method=post]").count() == 0, path
        refused = page.request.post(f"{url}/console/incidents/{incident.id}/acknowledge", form={"note": "x"})
        assert refused.status == 403 and "operate scope" in refused.json()["detail"]
        context.close()

        context = browser.new_context(viewport=VIEWPORT)
        page = log_in(context, url, operator, f"/console/incidents/{incident.id}")
        forged = page.request.post(f"{url}/console/incidents/{incident.id}/acknowledge", form={"note": "forged"})
        assert forged.status == 403 and "CSRF" in forged.json()["detail"]
        wrong = page.request.post(f"{url}/console/datasets/{dataset_id}/approve", form={"csrf": "forged"})
        assert wrong.status == 403
        page.reload()
        assert page.locator("h1 .badge").inner_text() == "open"
        context.close()
    assert topic_messages(settings, settings.finetune_topic, idle_ms=500) == []
