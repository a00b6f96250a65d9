"""Input the database cannot hold gets a clear 400, never a 500.

Postgres text and jsonb refuse the character U+0000, so a NUL that reached a query failed as
a server error. Every parameter of every documented ``/api`` and ``/v1/in-app`` operation is
tried with one (the operations are read from the OpenAPI document, so new ones are covered),
and so are the request bodies that carry ids or free-form properties.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from .conftest import CUSTOMER, Stack
from .test_api_schema import DOCUMENT, METHODS, credentials

NUL = "a\x00b"


def nul_requests() -> list[Any]:
    """One request per parameter of each operation, that parameter holding a NUL."""
    found = []
    for path, operations in DOCUMENT["paths"].items():
        if not path.startswith(("/api/", "/v1/in-app")):
            continue
        for method, spec in operations.items():
            if method not in METHODS:
                continue
            parameters = spec.get("parameters", [])
            for parameter in parameters:
                if parameter["in"] not in ("path", "query"):
                    continue
                found.append(
                    pytest.param(
                        method.upper(),
                        path,
                        parameter["name"],
                        parameter["in"],
                        id=f"{method.upper()} {path} {parameter['name']}",
                    )
                )
    return found


def filled(path: str, nul_in: str | None) -> str:
    """The path with ids that exist (so the NUL, not a 404, decides), one of them a NUL."""
    known = {"journey_id": "lifecycle", "segment_id": "vip", "customer_id": CUSTOMER}

    def value(match: re.Match[str]) -> str:
        name = match[1].split(":")[0]
        if name == nul_in:
            return "a%00b"
        return known.get(name, "1")

    return re.sub(r"\{([^}]+)\}", value, path)


@pytest.mark.parametrize(("method", "path", "name", "where"), nul_requests())
async def test_a_nul_in_any_parameter_is_a_400(
    stack: Stack, method: str, path: str, name: str, where: str
) -> None:
    url = filled(path, name if where == "path" else None)
    params = {name: NUL} if where == "query" else None
    body: dict[str, str] | None = {"userId": "u1"} if path.startswith("/v1/in-app") else None
    response = await stack.http.request(
        method, url, params=params, json=body, headers=credentials(path)
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


def cursor(*key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/journeys/vip_welcome/entries", {"customer_id": NUL}),
        ("POST", "/api/journeys/vip_welcome/entries", {"customer_id": "c", "message_id": NUL}),
        (
            "POST",
            "/api/journeys/vip_welcome/entries",
            {"customer_id": "c", "properties": {"cart": [{"name": NUL}]}},
        ),
        ("POST", "/api/journeys/vip_welcome/entries", {"customer_id": "c", "properties": {NUL: 1}}),
        ("POST", "/api/journeys/lifecycle/migrations", {"to_version": NUL}),
        ("POST", "/api/journeys/lifecycle/migrations", {"to_version": "v", "steps": {NUL: "s"}}),
        ("POST", "/api/templates/preview", {"channel": "sms", "template": {}, "customer_id": NUL}),
        ("POST", "/api/in-app/tokens", {"customer_id": NUL}),
        ("POST", "/api/sources", {"name": NUL}),
    ],
)
async def test_a_nul_in_a_body_is_a_400(
    stack: Stack, method: str, path: str, body: dict[str, Any]
) -> None:
    response = await stack.http.request(method, path, json=body, headers=stack.admin)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "path",
    [
        f"/api/segments/vip/customers?after={cursor(NUL)}",
        f"/api/journeys/lifecycle/customers?after={cursor(NUL, 'w')}",
    ],
)
async def test_a_forged_cursor_holding_a_nul_is_a_400(stack: Stack, path: str) -> None:
    response = await stack.http.get(path, headers=stack.admin)
    assert response.status_code == 400, response.text


async def test_the_in_app_routes_refuse_a_nul_in_the_customer_id(stack: Stack) -> None:
    for body in ({"userId": NUL}, {"anonymousId": NUL}):
        response = await stack.http.post("/v1/in-app", json=body, headers=stack.writer)
        assert response.status_code == 400, response.text


# A NUL anywhere in an ingest body refuses the whole request, naming where, storing nothing.
INGEST_NUL_BODIES = [
    pytest.param("track", {"userId": "u1", "event": NUL}, "event", id="event name"),
    pytest.param("identify", {"userId": "u1", "traits": {"name": NUL}}, "traits.name", id="trait"),
    pytest.param(
        "identify", {"userId": "u1", "traits": {"tags": ["x", NUL]}}, "traits.tags[1]", id="list"
    ),
    pytest.param(
        "track",
        {"userId": "u1", "event": "E", "properties": {"a\x00b": 1}},
        "properties.a\\u0000b",
        id="property key",
    ),
    pytest.param(
        "track",
        {"userId": "u1", "event": "E", "properties": {"cart": [{"sku": NUL}]}},
        "properties.cart[0].sku",
        id="nested property value",
    ),
    pytest.param("track", {"userId": NUL, "event": "E"}, "userId", id="userId"),
    pytest.param("page", {"anonymousId": NUL, "name": "Home"}, "anonymousId", id="anonymousId"),
    pytest.param(
        "track", {"userId": "u1", "event": "E", "messageId": NUL}, "messageId", id="messageId"
    ),
    pytest.param("group", {"userId": "u1", "groupId": NUL}, "groupId", id="groupId"),
    pytest.param("alias", {"userId": "u1", "previousId": NUL}, "previousId", id="previousId"),
    pytest.param(
        "track", {"userId": "u1", "event": "E", "context": {"ip": NUL}}, "context.ip", id="context"
    ),
]


async def _stored(stack: Stack) -> int:
    return int(await stack.pool.fetchval("SELECT count(*) FROM events"))


@pytest.mark.parametrize(("kind", "body", "where"), INGEST_NUL_BODIES)
async def test_ingest_refuses_a_nul(
    stack: Stack, kind: str, body: dict[str, Any], where: str
) -> None:
    before = await _stored(stack)
    response = await stack.http.post(f"/v1/{kind}", json=body, headers=stack.writer)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["error"] == "invalid_request"
    assert answer["fields"] == [{"field": where, "message": "U+0000 (NUL) is not allowed"}]
    assert where in answer["message"]
    assert await _stored(stack) == before


async def test_a_nul_in_one_message_refuses_the_whole_batch_naming_it(stack: Stack) -> None:
    before = await _stored(stack)
    good = {"type": "track", "userId": "u1", "event": "Fine"}
    body = {"batch": [good, good, {"type": "track", "userId": "u1", "event": NUL}, good]}
    response = await stack.http.post("/v1/batch", json=body, headers=stack.writer)
    assert response.status_code == 400, response.text
    assert response.json()["fields"][0]["field"] == "batch[2].event"
    assert "batch[2].event" in response.json()["message"]
    assert await _stored(stack) == before


async def test_an_escaped_backslash_before_u0000_is_no_nul(stack: Stack) -> None:
    # The JSON text "a\\u0000b" is a backslash followed by "u0000": plain text, stored.
    raw = b'{"userId": "u1", "event": "a\\\\u0000b"}'
    response = await stack.http.post("/v1/track", content=raw, headers=stack.writer)
    assert response.status_code == 200, response.text
    stored = await stack.pool.fetchval("SELECT count(*) FROM events WHERE event = $1", "a\\u0000b")
    assert stored == 1


async def test_the_dashboard_refuses_a_nul_in_a_customer_id(stack: Stack) -> None:
    response = await stack.http.get("/dashboard/customers/a%00b", headers=stack.admin)
    assert response.status_code in (400, 404), response.text
