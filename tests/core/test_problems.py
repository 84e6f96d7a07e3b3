import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.types import Receive, Scope, Send

from core.errors import Conflict, Misconfigured, Unavailable, Unprocessable
from core.problems import RETRY_AFTER_S, UnavailableMiddleware, install_problem_handlers


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


def test_redis_down_is_a_503_with_retry_after_from_a_route_or_a_middleware() -> None:
    down = RedisConnectionError("Error 111 connecting to 10.0.0.7:6379. Connection refused.")
    app = FastAPI()

    @app.get("/route")
    async def route() -> None:
        raise down

    async def auth(scope: Scope, receive: Receive, send: Send) -> None:  # a middleware that needs Redis
        if scope["path"] == "/middleware":
            raise down
        await app_router(scope, receive, send)

    install_problem_handlers(app)
    app_router = app.build_middleware_stack()
    api = TestClient(UnavailableMiddleware(auth))
    for path in ("/route", "/middleware"):
        answer = api.get(path)
        assert answer.status_code == 503 and answer.headers["retry-after"] == str(RETRY_AFTER_S), path
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["detail"] == "Redis does not answer; retry later"  # no address


def test_other_errors_of_a_middleware_pass() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        TestClient(UnavailableMiddleware(broken)).get("/")
