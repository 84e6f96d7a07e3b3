"""Shared fixtures: a real tansu broker and redis-server for the session, on free ports."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from redis.asyncio import Redis as AsyncRedis

from devtools.embedded import LlamaServer, ServiceUnavailable, free_port, llama_server, with_services
from driftloop.api import create_api
from driftloop.auth import Scope, TokenStore
from driftloop.settings import Settings

REQUIRE_SERVICES = os.environ.get("DRIFTLOOP_REQUIRE_SERVICES") == "1"
SERIAL_GROUPS = {"llm": ("llm_service",), "faults": ("rig",)}
"""xdist groups by the fixture that puts a test in one: ``make test`` runs two pytest-xdist workers, and the tests
of a group run one after another on one of them (the LLM tests share one llama server; no two fault scenarios
compete for the cores), beside the rest."""


def pytest_itemcollected(item: pytest.Item) -> None:
    """A test that uses a fixture of :data:`SERIAL_GROUPS` joins that group (``--dist loadgroup``); marked as it is
    collected, before xdist's ``pytest_collection_modifyitems`` reads the groups into the test ids."""
    for group, fixtures in SERIAL_GROUPS.items():
        if any(name in getattr(item, "fixturenames", ()) for name in fixtures):
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at a tansu broker and a redis-server that this session started."""
    try:
        with with_services(
            Settings(_env_file=None, kafka_bootstrap=None, redis_url=None), tmp_path_factory.mktemp("services")
        ) as settings:
            yield settings
    except ServiceUnavailable as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"DRIFTLOOP_REQUIRE_SERVICES=1 but {exc}")
        pytest.skip(f"embedded services unavailable: {exc}")


@pytest.fixture(scope="session")
def llm_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-cpp-python's server with SmolLM2-135M, started for the session."""
    try:
        with llama_server(tmp_path_factory.mktemp("llm")) as server:
            yield server
    except ServiceUnavailable as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"DRIFTLOOP_REQUIRE_SERVICES=1 but {exc}")
        pytest.skip(f"LLM server unavailable: {exc}")


@pytest.fixture
def llm_server(llm_service: LlamaServer) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:N/v1``) of the session's LLM server; a test during which it dies fails
    saying how (its exit code or signal), not only with the refused connections that follow."""
    llm_service.check()
    yield llm_service.base_url
    llm_service.check()


@pytest.fixture
def settings(services: Settings, tmp_path: Path) -> Settings:
    """Per-test settings: own topics, consumer group and data dir on the session's services; empty Redis."""
    suffix = uuid.uuid4().hex[:8]
    redis.Redis.from_url(services.redis_url).flushdb()
    services.secret_box().install()  # what stores of secrets called directly in this process seal with
    return services.model_copy(
        update={
            "app_id": f"driftloop-test-{suffix}",
            "traffic_topic": f"llm.traffic.{suffix}",
            "dlq_topic": f"llm.traffic.dlq.{suffix}",
            "incidents_topic": f"driftloop.incidents.{suffix}",
            "finetune_topic": f"finetune.requests.{suffix}",
            "results_topic": f"finetune.results.{suffix}",
            "data_dir": tmp_path / "data",
            "webhook_backoff_s": 0.05,
            "webhook_allow_private_networks": True,
            "job_lease_s": 6.0,
            "job_sweep_interval_s": 2.0,
            "worker_metrics_port": free_port(),
            "api_port": free_port(),
            "api_docs": True,  # tests read /openapi.json; tests/integration/test_api.py checks it off
        }
    )


@pytest.fixture
def issue_token(settings: Settings) -> Callable[[str, Scope], str]:
    """``issue_token(name, scope)``: a new API token with ``scope``, written to the test's Redis by the token store."""

    def issue(name: str, scope: Scope) -> str:
        async def create() -> str:
            redis = AsyncRedis.from_url(settings.redis_url)
            try:
                created = await TokenStore(redis).create(name, [scope])
            finally:
                await redis.aclose()
            assert created is not None, f"token {name} exists"
            return created.token

        return asyncio.run(create())

    return issue


@pytest.fixture
def make_client(settings: Settings, issue_token: Callable[[str, Scope], str]) -> Callable[..., TestClient]:
    """``make_client(scope)``: a TestClient (use it in ``with``) on the test's API, with a new token of ``scope``."""

    def make(scope: Scope | str = Scope.admin, name: str | None = None, **kwargs: object) -> TestClient:
        token = issue_token(name or f"test-{scope}-{uuid.uuid4().hex[:6]}", Scope(scope))
        return TestClient(create_api(settings), headers={"Authorization": f"Bearer {token}"}, **kwargs)

    return make


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> Iterator[TestClient]:
    """The API on the test's services, as an HTTP client with an admin token."""
    with make_client(Scope.admin, name="test-admin") as api:
        yield api


@pytest.fixture
def read_client(make_client: Callable[..., TestClient]) -> Iterator[TestClient]:
    """The API with a read-only token."""
    with make_client(Scope.read, name="test-reader") as api:
        yield api


@pytest.fixture
def operate_client(make_client: Callable[..., TestClient]) -> Iterator[TestClient]:
    """The API with an operate-scoped token."""
    with make_client(Scope.operate, name="test-operator") as api:
        yield api


@pytest.fixture(scope="session")
def require_services() -> bool:
    """Whether a service that cannot start fails the test (``DRIFTLOOP_REQUIRE_SERVICES=1``) instead of skipping it."""
    return REQUIRE_SERVICES
