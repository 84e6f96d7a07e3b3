"""The API's OpenAPI document, completed with what middleware adds and FastAPI cannot see.

Bearer security on every operation but the open ones, ``Problem`` bodies for errors (422 included,
replacing FastAPI's own validation schema), and the ``Idempotency-Key`` header on POSTs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI

from core.problems import Problem, problem_schema_response
from driftloop.idempotency import HEADER, MAX_KEY_LENGTH

SCHEME = "bearer"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI, open_paths: Iterable[str]) -> None:
    """Make ``app.openapi()`` return the completed document."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    open_paths = frozenset(open_paths)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate(), open_paths)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any], open_paths: frozenset[str]) -> dict[str, Any]:
    """``document`` with security, problem responses and idempotency keys declared."""
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "an API token (`dl_…`); GET/HEAD need scope read, other methods operate, tokens and audit admin",
    }
    schemas = components.setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    document["security"] = [{SCHEME: []}]
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                _operation(item[method], method, open=path in open_paths)
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        if name in schemas and f'"#/components/schemas/{name}"' not in _text(document, skip=name):
            del schemas[name]
    return document


def _operation(operation: dict[str, Any], method: str, open: bool) -> None:
    responses = operation.setdefault("responses", {})
    if "422" in responses:
        responses["422"] = problem_schema_response("the request is invalid (see `errors`)")
    if open:
        operation["security"] = []
        return
    responses.setdefault("401", problem_schema_response("no bearer token, or not a valid one"))
    responses.setdefault("403", problem_schema_response("the token lacks the scope this needs"))
    responses.setdefault("4XX", problem_schema_response("a client error"))
    responses.setdefault("5XX", problem_schema_response("a server error"))
    if method == "post":
        responses.setdefault("413", problem_schema_response("the request body is too large"))
        operation.setdefault("parameters", []).append(
            {
                "name": HEADER,
                "in": "header",
                "required": False,
                "description": "a retry with the same key and body gets the first response again (24 h)",
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
            }
        )


def _text(document: dict[str, Any], skip: str) -> str:
    """The document as text, without the schema ``skip`` (to find references to it)."""
    schemas = document["components"]["schemas"]
    return json.dumps({**document, "components": {"schemas": {k: v for k, v in schemas.items() if k != skip}}})
