"""The OpenAPI document lists the 400 that invalid input really gets, not FastAPI's 422."""

from __future__ import annotations

from typing import Any

import jsonschema  # type: ignore[import-untyped]

from .conftest import Api


async def _document(api: Api) -> dict[str, Any]:
    response = await api.http.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, spec)
        for path, operations in document["paths"].items()
        for method, spec in operations.items()
    ]


async def test_no_operation_documents_fastapis_validation_error(api: Api) -> None:
    document = await _document(api)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "ValidationError" not in document["components"]["schemas"]
    for method, path, spec in _operations(document):
        refused = spec["responses"].get("422")
        if refused is not None:  # only a failed template render, with its own body
            assert (method, path) == ("post", "/api/templates/preview")
            schema = refused["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/RenderErrorPublic"}


async def test_every_operation_with_input_documents_the_400_error_body(api: Api) -> None:
    document = await _document(api)
    for method, path, spec in _operations(document):
        if not spec.get("parameters") and "requestBody" not in spec:
            continue
        bad = spec["responses"].get("400")
        assert bad is not None, f"{method.upper()} {path} does not document its 400"
        schema = bad["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorPublic"}, (method, path)


async def test_an_invalid_parameter_answers_the_documented_400_body(api: Api) -> None:
    await api.deploy()
    document = await _document(api)
    response = await api.http.get(
        "/api/journeys/lifecycle/trends", params={"since": "1749718800"}, headers=api.admin
    )
    assert response.status_code == 400
    path = "/api/journeys/{journey_id}/trends"
    documented = document["paths"][path]["get"]["responses"]["400"]
    # The reference resolved against the document's own components.
    schema = {**documented["content"]["application/json"]["schema"], **document}
    jsonschema.validate(response.json(), schema)
    assert response.json()["error"] == "invalid_request"
    [field] = response.json()["fields"]
    assert field["field"] == "query.since" and "ISO 8601" in field["message"]
