import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.errors import Conflict, Misconfigured, Unavailable, Unprocessable
from core.problems import install_problem_handlers


class AlreadyDone(Conflict, ValueError): ...


class NoSuchRecipe(Unprocessable, LookupError): ...


class BrokenFile(Misconfigured, ValueError): ...


class BrokerDown(Unavailable, RuntimeError): ...


def client() -> TestClient:
    app = FastAPI()
    errors = {
        "conflict": AlreadyDone("job 7 already succeeded"),
        "unprocessable": NoSuchRecipe("no recipe nope"),
        "misconfigured": BrokenFile("recipes file /etc/secret/recipes.yaml is not valid YAML"),
        "unavailable": BrokerDown("the broker did not take the message"),
        "value": ValueError("bad value"),
        "lookup": LookupError("no such thing"),
    }

    @app.get("/{name}")
    async def fail(name: str) -> None:
        raise errors[name]

    install_problem_handlers(app)
    return TestClient(app, raise_server_exceptions=False)


def test_a_domain_error_answers_with_the_status_of_its_first_known_base() -> None:
    api = client()
    answers = {name: api.get(f"/{name}") for name in ("conflict", "unprocessable", "unavailable", "value", "lookup")}
    assert {name: r.status_code for name, r in answers.items()} == {
        "conflict": 409,
        "unprocessable": 422,
        "unavailable": 503,
        "value": 400,
        "lookup": 404,
    }
    assert answers["conflict"].headers["content-type"] == "application/problem+json"
    assert answers["conflict"].json()["detail"] == "job 7 already succeeded"


def test_a_misconfigured_server_is_a_500_that_keeps_its_reason_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    answer = client().get("/misconfigured")
    assert answer.status_code == 500 and "/etc/secret" not in answer.text
    assert "the API log says why" in answer.json()["detail"]
    assert "/etc/secret/recipes.yaml" in caplog.text
