"""HTTP errors as JSON: ``{"error": code, "message": text, "fields": [...]}``.

Every rejection is a 4xx with a body that names what was wrong; nothing is stored.
``ErrorPublic`` is that body's model and ``error_responses`` declares it in the OpenAPI
document for the statuses a route can answer, so clients (and the schema tests) know them;
``json_body`` documents a JSON body that a route reads itself (within a size limit) rather
than through a FastAPI parameter. Invalid parameters and bodies answer 400 with that body,
not FastAPI's 422: ``validation_as_400`` makes the generated document say so.

Postgres text and jsonb cannot hold the character U+0000: a request carrying one would fail
in the database as a 500. ``NulGuard`` (a router dependency, for path and query) and
``NulFree`` (a field validator, for bodies) refuse it at the door with a 400 instead.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException


class FieldErrorPublic(BaseModel):
    """One thing wrong with a request: where (``batch[0].event``, a YAML path) and why."""

    field: str
    message: str
    line: int | None = None  # in a journey or segment file, when the problem has one


class ErrorPublic(BaseModel):
    """The body of every error the API answers itself."""

    error: str  # a stable code: invalid_request, unauthorized, not_found, conflict, ...
    message: str
    fields: list[FieldErrorPublic] | None = None


# What each status means across the API; a route may say more with its own description.
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "not valid: the body says what, and names the fields",
    401: "missing or wrong credentials",
    403: "credentials that do not allow this",
    404: "no such resource",
    409: "conflicts with the resource's state",
    413: "request body over the limit",
    503: "a dependency is away or the server is busy: retry later",
}


def error_responses(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses, each with the ``ErrorPublic`` body.

    ``described`` overrides a description by status, written ``s404="no such journey"``.
    """
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        text = described.get(f"s{status}") or ERROR_DESCRIPTIONS.get(status, "error")
        out[status] = {"model": ErrorPublic, "description": text}
    unknown = set(described) - {f"s{status}" for status in statuses}
    if unknown:
        raise ValueError(f"descriptions for statuses not listed: {sorted(unknown)}")
    return out


def json_body(model: type[BaseModel], description: str) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the JSON request body, its nested models inline.

    The body is read by hand (``body.read_json``) to bound its size, so FastAPI does not know
    it; ``$defs`` references are resolved in place because the schema sits inside the
    operation, where ``#/$defs/...`` would point at the document's root.
    """
    schema = model.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**inline(defs[ref.removeprefix("#/$defs/")]), **inline(rest)}
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": inline(schema)}},
        }
    }


_FASTAPI_VALIDATION = "#/components/schemas/HTTPValidationError"
_ERROR_PUBLIC = "#/components/schemas/ErrorPublic"


def validation_as_400(document: dict[str, Any]) -> None:
    """Document validation failures as what ``validation_handler`` answers: a 400 with the
    ``ErrorPublic`` body, in place of the 422 FastAPI lists for every operation with input.

    Other 422s (a template that fails to render) have their own body and stay.
    """
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses") if isinstance(operation, dict) else None
            if not responses or "422" not in responses:
                continue
            content = responses["422"].get("content", {}).get("application/json", {})
            if content.get("schema", {}).get("$ref") != _FASTAPI_VALIDATION:
                continue
            del responses["422"]
            responses.setdefault(
                "400",
                {
                    "description": ERROR_DESCRIPTIONS[400],
                    "content": {"application/json": {"schema": {"$ref": _ERROR_PUBLIC}}},
                },
            )
    if "ErrorPublic" not in schemas:
        body = ErrorPublic.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas["ErrorPublic"] = body
    # FastAPI's own error models, unless something still refers to them.
    for name in ("HTTPValidationError", "ValidationError"):
        rest = {key: value for key, value in schemas.items() if key != name}
        others = {**document, "components": {**document["components"], "schemas": rest}}
        if f'"#/components/schemas/{name}"' not in json.dumps(others):
            schemas.pop(name, None)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields, self.headers = fields, headers


NUL_MESSAGE = "must not contain the character U+0000 (NUL)"
Value = TypeVar("Value")


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(item) for item in value)
    return False


def without_nul(value: Value) -> Value:
    """``value`` itself, when no string in it (keys included, at any depth) holds a NUL."""
    if _holds_nul(value):
        raise ValueError(NUL_MESSAGE)
    return value


NulFree = AfterValidator(without_nul)


async def refuse_nul(request: Request) -> None:
    """400 for a NUL in the path or the query, before any of it reaches the database."""
    path: str = request.scope.get("path", "")
    if "\x00" in path or any(_holds_nul(item) for item in request.query_params.multi_items()):
        raise ApiError(400, "invalid_request", f"path and query {NUL_MESSAGE}")


NulGuard = Depends(refuse_nul)


def field_errors(exc: ValidationError | RequestValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as ``{"field": "batch[0].event", "message": ...}``."""
    out = []
    for err in exc.errors():
        path = ""
        for part in err["loc"]:
            if part == "body":
                continue
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        out.append({"field": path or "(body)", "message": err["msg"]})
    return out


def _body(code: str, message: str, fields: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "message": message}
    if fields:
        body["fields"] = fields
    return body


async def api_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        _body(exc.code, exc.message, exc.fields), status_code=exc.status, headers=exc.headers
    )


async def validation_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = field_errors(exc)
    return JSONResponse(_body("invalid_request", "request is not valid", fields), status_code=400)


async def http_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, "error"
    )
    return JSONResponse(
        _body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )
