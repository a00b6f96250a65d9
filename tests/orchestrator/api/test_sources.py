"""Write keys per source: created by an admin, shown once, stored hashed, revoked at once."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from journeyman.orchestrator.api import Services, create_app
from journeyman.orchestrator.storage import create_pool

from .conftest import ADMIN_TOKEN, WRITE_KEY, Api

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def track(user: str, event: str = "Product Viewed") -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": event, "messageId": str(uuid.uuid4())}


async def create(api: Api, name: str = "Web shop") -> dict[str, Any]:
    response = await api.http.post("/api/sources", json={"name": name}, headers=ADMIN)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def source_of(api: Api, message_id: str) -> str | None:
    found: str | None = await api.pool.fetchval(
        "SELECT source_id FROM events WHERE message_id = $1", message_id
    )
    return found


@pytest.fixture
async def second_api(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """Another API instance over the same database, with its own pool (as another process)."""
    pool = await create_pool(api.services.database_url)
    services = Services(
        pool=pool,
        database_url=api.services.database_url,
        write_key=WRITE_KEY,
        admin_token=ADMIN_TOKEN,
        max_body_bytes=64 * 1024,
    )
    app = create_app(services, follow_deploys=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://journeyman.test") as http:
        yield http
    await pool.close()


async def test_a_new_source_is_shown_once_with_its_key(api: Api) -> None:
    response = await api.http.post("/api/sources", json={"name": "  Web shop "}, headers=ADMIN)
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["id"].startswith("src_") and body["name"] == "Web shop"
    assert body["write_key"].startswith("wk_") and len(body["write_key"]) >= 32
    assert body["key_hint"] == body["write_key"][:7]
    assert body["revoked"] is False and body["revoked_at"] is None
    again = await create(api, "Web shop")
    assert again["id"] != body["id"] and again["write_key"] != body["write_key"]


async def test_events_sent_with_a_source_key_carry_its_id(api: Api) -> None:
    source = await create(api)
    by_basic = track("u1")
    response = await api.http.post("/v1/track", json=by_basic, auth=(source["write_key"], ""))
    assert response.status_code == 200, response.text
    by_body = {"batch": [track("u1")], "writeKey": source["write_key"]}
    response = await api.http.post("/v1/batch", json=by_body)
    assert response.status_code == 200, response.text
    assert await source_of(api, by_basic["messageId"]) == source["id"]
    assert await source_of(api, by_body["batch"][0]["messageId"]) == source["id"]


async def test_the_configured_key_is_the_default_source(api: Api) -> None:
    await create(api)
    message = track("u2")
    response = await api.http.post("/v1/track", json=message, auth=(WRITE_KEY, ""))
    assert response.status_code == 200
    assert await source_of(api, message["messageId"]) == "default"


async def test_a_revoked_key_is_refused_at_once_by_every_instance(
    api: Api, second_api: httpx.AsyncClient
) -> None:
    source = await create(api)
    key = source["write_key"]
    assert (await second_api.post("/v1/track", json=track("u3"), auth=(key, ""))).status_code == 200
    revoked = await api.http.delete(f"/api/sources/{source['id']}", headers=ADMIN)
    assert revoked.status_code == 200
    assert revoked.json()["revoked"] is True and revoked.json()["revoked_at"] is not None
    events = await api.count("events")
    for client in (api.http, second_api):
        by_basic = await client.post("/v1/track", json=track("u3"), auth=(key, ""))
        by_body = await client.post("/v1/track", json={**track("u3"), "writeKey": key})
        for response in (by_basic, by_body):
            assert response.status_code == 401
            assert response.json()["message"] == "unknown or revoked write key"
    assert await api.count("events") == events
    # Other sources and the configured key are untouched.
    other = await create(api, "App")
    assert (await api.http.post("/v1/t", json=track("u3"), auth=(WRITE_KEY, ""))).status_code == 200
    ok = await api.http.post("/v1/t", json=track("u3"), auth=(other["write_key"], ""))
    assert ok.status_code == 200


@pytest.mark.parametrize("key", ["wk_never_issued_key_0123456789abcdef", ""])
async def test_an_unknown_key_gets_the_same_answer_as_a_revoked_one(api: Api, key: str) -> None:
    response = await api.http.post("/v1/track", json=track("u4"), auth=(key, ""))
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized", "message": "unknown or revoked write key"}
    assert await api.count("events") == 0


async def test_revoking_again_keeps_the_first_revocation(api: Api) -> None:
    source = await create(api)
    first = await api.http.delete(f"/api/sources/{source['id']}", headers=ADMIN)
    again = await api.http.delete(f"/api/sources/{source['id']}", headers=ADMIN)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()


async def test_list_and_get_show_hints_and_revocations_never_keys(api: Api) -> None:
    web, app = await create(api, "Web shop"), await create(api, "App")
    await api.http.delete(f"/api/sources/{app['id']}", headers=ADMIN)
    listed = await api.http.get("/api/sources", headers=ADMIN)
    assert listed.status_code == 200
    assert [(s["id"], s["name"], s["key_hint"], s["revoked"]) for s in listed.json()] == [
        (web["id"], "Web shop", web["key_hint"], False),
        (app["id"], "App", app["key_hint"], True),
    ]
    one = await api.http.get(f"/api/sources/{web['id']}", headers=ADMIN)
    assert one.status_code == 200 and one.json() == listed.json()[0]
    for response in (listed, one):
        for secret in (web["write_key"], app["write_key"]):
            assert secret not in response.text
            assert hashlib.sha256(secret.encode()).hexdigest() not in response.text
        assert "write_key" not in response.text and "key_hash" not in response.text


async def test_the_database_never_holds_a_plaintext_key(api: Api) -> None:
    source = await create(api)
    key = source["write_key"]
    await api.http.post("/v1/track", json=track("u5"), auth=(key, ""))
    await api.http.post("/v1/batch", json={"batch": [track("u5")], "writeKey": key})
    stored = await api.pool.fetchval("SELECT key_hash FROM sources")
    assert stored == hashlib.sha256(key.encode()).hexdigest()
    tables = await api.pool.fetch(
        "SELECT quote_ident(table_name) AS name FROM information_schema.tables"
        " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    assert len(tables) > 5
    for table in tables:
        rows = await api.pool.fetch(f"SELECT row_to_json(t)::text AS row FROM {table['name']} t")
        assert not [r["row"] for r in rows if key in r["row"]], table["name"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/sources"),
        ("GET", "/api/sources"),
        ("GET", "/api/sources/src_0123456789abcdef"),
        ("DELETE", "/api/sources/src_0123456789abcdef"),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {WRITE_KEY}"}],
)
async def test_management_needs_the_admin_token(
    api: Api, method: str, path: str, headers: dict[str, str]
) -> None:
    source = await create(api)
    target = path.replace("src_0123456789abcdef", source["id"])
    response = await api.http.request(method, target, json={"name": "X"}, headers=headers)
    assert response.status_code == 401
    assert "write_key" not in response.text
    rows = await api.pool.fetch("SELECT source_id, revoked_at FROM sources")
    assert [(r["source_id"], r["revoked_at"]) for r in rows] == [(source["id"], None)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": 5}, "name"),
        ({"name": "Web\nshop"}, "name"),
        ({"name": "Web", "writeKey": "wk_mine"}, "writeKey"),
        ([], "(body)"),
    ],
)
async def test_bad_input_is_400_naming_the_field_and_creates_nothing(
    api: Api, body: Any, field: str
) -> None:
    response = await api.http.post("/api/sources", json=body, headers=ADMIN)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert [f["field"] for f in response.json()["fields"]] == [field]
    assert await api.count("sources") == 0


async def test_a_body_that_is_not_json_is_400(api: Api) -> None:
    response = await api.http.post(
        "/api/sources",
        content=b"name=Web",
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert await api.count("sources") == 0


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_an_unknown_source_is_404(api: Api, method: str) -> None:
    unknown = await api.http.request(method, "/api/sources/src_ffffffffffffffff", headers=ADMIN)
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "not_found", "message": "no source 'src_ffffffffffffffff'"}
    default = await api.http.request(method, "/api/sources/default", headers=ADMIN)
    assert default.status_code == 404
    assert "JOURNEYMAN_WRITE_KEY" in default.json()["message"]
    assert (await api.http.post("/v1/t", json=track("u6"), auth=(WRITE_KEY, ""))).status_code == 200
