"""Schemathesis against the API's own OpenAPI document: no server errors, every response as documented.

Each operation gets a bounded, derandomized run (no shrinking) on the real Redis and broker, with the
bootstrap admin token, so every route — tokens and audit included — is reached past authentication. Data is
positive and negative (schemathesis's default modes, which a test holds to), with the coverage phase's boundary values
(``offset`` at ``MAX_OFFSET`` and one past it, …). What a schema cannot express — JSON nested past the parser's
limit, integers past Redis's 64-bit range — is sent explicitly by ``test_api.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from core.secrets import new_key
from driftloop.api import create_api
from driftloop.settings import Settings

pytestmark = pytest.mark.integration
ADMIN_TOKEN = "schemathesis-bootstrap-admin-token"


@pytest.fixture
def api(settings: Settings) -> FastAPI:
    """The app on the test's services, with ``ADMIN_TOKEN`` as its bootstrap admin token."""
    return create_api(settings.model_copy(update={"admin_token": SecretStr(ADMIN_TOKEN)}))


def _document() -> dict[str, Any]:
    """The OpenAPI document (it does not depend on the services, which are only started by the fixtures)."""
    unused = Settings(_env_file=None, kafka_bootstrap="unused:9092", redis_url="redis://unused", secret_keys=new_key())
    return create_api(unused).openapi()


# schemathesis.pytest.from_fixture would load it from the fixture, but fails on pytest 9.2 (Node._nodeid is gone)
schema = schemathesis.openapi.from_dict(_document())


def test_negative_data_and_boundary_values_are_generated() -> None:
    assert set(schema.config.generation.modes) == set(GenerationMode)
    assert schema.config.phases.coverage.enabled


@schema.parametrize()
@hypothesis_settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_operations_answer_as_documented(case: schemathesis.Case, api: FastAPI) -> None:
    response = case.call_and_validate(
        app=api,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        checks=[not_a_server_error, response_schema_conformance],
    )
    if case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE:
        assert response.status_code != 401, "the admin token was not accepted"
