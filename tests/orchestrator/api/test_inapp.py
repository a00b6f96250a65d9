"""In-app messages: storage on a real Postgres, the browser routes and the administration view."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from journeyman.orchestrator import inapp
from journeyman.orchestrator.customers.listing import PageRequest, page_request

from .conftest import ADMIN_TOKEN, WRITE_KEY, Api

AUTH = (WRITE_KEY, "")
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


async def put(
    api: Api, customer_id: str, key: str, *, minutes: int = 0, **fields: Any
) -> inapp.InAppMessage:
    stored = await inapp.store(
        api.pool,
        customer_id=customer_id,
        send_key=key,
        title=fields.pop("title", f"title {key}"),
        body=fields.pop("body", f"body {key}"),
        now=T0 + timedelta(minutes=minutes),
        **fields,
    )
    return stored.message


async def ingest(api: Api, *messages: dict[str, Any]) -> None:
    batch = [{"messageId": str(uuid.uuid4()), **m} for m in messages]
    response = await api.http.post("/v1/batch", json={"batch": batch}, auth=AUTH)
    assert response.status_code == 200, response.text


def basic(user: str, password: str = "") -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def pending(api: Api, **params: str) -> httpx.Response:
    return await api.http.get("/v1/in-app", params=params, auth=AUTH)


def keys(response: httpx.Response) -> list[str]:
    return [m["title"].removeprefix("title ") for m in response.json()["messages"]]


# --- storage --------------------------------------------------------------------------------


async def test_store_is_idempotent_by_send_key(api: Api) -> None:
    first = await inapp.store(
        api.pool,
        customer_id="mei",
        send_key="run-1/welcome/0",
        title="Welcome",
        body="Hello Mei",
        data={"cta": "/coupons"},
    )
    again = await inapp.store(
        api.pool, customer_id="mei", send_key="run-1/welcome/0", title="Other", body="Other"
    )
    assert first.created and not again.created
    assert again.message == first.message
    assert (first.message.title, first.message.data) == ("Welcome", {"cta": "/coupons"})
    assert await api.count("in_app_messages") == 1


async def test_store_refuses_what_cannot_be_a_message(api: Api) -> None:
    for fields in (
        {"title": "t", "body": "x" * (inapp.storage.MAX_BODY_CHARS + 1)},
        {"title": "t", "body": "b", "expires_at": datetime(2025, 1, 1)},  # no time zone
    ):
        try:
            await inapp.store(api.pool, customer_id="mei", send_key="k", **fields)
        except inapp.MessageError:
            continue
        raise AssertionError(f"stored {fields}")
    assert await api.count("in_app_messages") == 0


async def test_listing_pages_unread_first_then_newest(api: Api) -> None:
    ids = {
        key: (await put(api, "mei", key, minutes=minute)).id for minute, key in enumerate("abcdef")
    }
    await put(api, "someone-else", "z", minutes=10)
    await inapp.mark_read(api.pool, customer_ids=["mei"], id=ids["f"])
    await inapp.mark_read(api.pool, customer_ids=["mei"], id=ids["b"])

    seen: list[str] = []
    after = None
    while True:
        page = await inapp.list_for_customer(
            api.pool, customer_ids=["mei"], request=page_request(2, after, parts=3)
        )
        seen += [m.title.removeprefix("title ") for m in page.messages]
        if page.next is None:
            break
        after = page.next
    assert seen == ["e", "d", "c", "a", "f", "b"]


async def test_acknowledged_and_expired_messages_are_not_pending(api: Api) -> None:
    kept = await put(api, "mei", "kept", expires_at=datetime.now(UTC) + timedelta(days=1))
    await put(api, "mei", "expired", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    done = await put(api, "mei", "done")
    await inapp.acknowledge(api.pool, customer_ids=["mei"], id=done.id)
    page = await inapp.list_for_customer(
        api.pool, customer_ids=["mei"], request=PageRequest(10, None)
    )
    assert [m.id for m in page.messages] == [kept.id]
    everything = await inapp.list_for_customer(
        api.pool, customer_ids=["mei"], request=PageRequest(10, None), pending_only=False
    )
    assert len(everything.messages) == 3


async def test_read_and_acknowledge_keep_the_first_time(api: Api) -> None:
    message = await put(api, "mei", "a")
    first = await inapp.mark_read(api.pool, customer_ids=["mei"], id=message.id, at=T0)
    later = await inapp.mark_read(
        api.pool, customer_ids=["mei"], id=message.id, at=T0 + timedelta(hours=1)
    )
    assert first is not None and later is not None
    assert first.read_at == later.read_at == T0 and later.acknowledged_at is None
    acked = await inapp.acknowledge(
        api.pool, customer_ids=["mei"], id=message.id, at=T0 + timedelta(hours=2)
    )
    assert acked is not None
    assert (acked.read_at, acked.acknowledged_at) == (T0, T0 + timedelta(hours=2))
    unread = await put(api, "mei", "b")
    acked = await inapp.acknowledge(api.pool, customer_ids=["mei"], id=unread.id, at=T0)
    assert acked is not None and acked.read_at == acked.acknowledged_at == T0


async def test_no_one_changes_another_customers_message(api: Api) -> None:
    message = await put(api, "mei", "a")
    assert await inapp.mark_read(api.pool, customer_ids=["tom"], id=message.id) is None
    assert await inapp.acknowledge(api.pool, customer_ids=["tom"], id=message.id) is None
    assert await inapp.get(api.pool, customer_ids=["tom"], id=message.id) is None
    assert await inapp.mark_read(api.pool, customer_ids=["mei"], id="not-a-uuid") is None
    row = await api.pool.fetchrow("SELECT read_at, acknowledged_at FROM in_app_messages")
    assert tuple(row) == (None, None)


async def test_erase_deletes_every_message_of_the_customer(api: Api) -> None:
    await put(api, "mei", "a")
    await put(api, "anon-1", "b")
    await put(api, "tom", "c")
    assert await inapp.erase(api.pool, customer_ids=["mei", "anon-1"]) == 2
    assert await api.pool.fetchval("SELECT array_agg(customer_id) FROM in_app_messages") == ["tom"]


# --- the browser routes ---------------------------------------------------------------------


async def test_a_customer_lists_their_pending_messages(api: Api) -> None:
    await put(api, "mei", "a", data={"cta": "/coupons"}, minutes=1)
    await put(api, "mei", "b", minutes=2)
    await put(api, "tom", "c")
    response = await pending(api, userId="mei")
    assert response.status_code == 200, response.text
    body = response.json()
    assert keys(response) == ["b", "a"] and body["next"] is None
    assert set(body["messages"][1]) == {
        "id", "title", "body", "data", "created_at", "read_at", "expires_at"
    }  # fmt: skip
    assert body["messages"][1]["data"] == {"cta": "/coupons"}


async def test_listing_needs_a_write_key_and_a_customer(api: Api) -> None:
    assert (await api.http.get("/v1/in-app", params={"userId": "mei"})).status_code == 401
    wrong = await api.http.get("/v1/in-app", params={"userId": "mei"}, auth=("nope", ""))
    assert wrong.status_code == 401
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert (
        await api.http.get("/v1/in-app", params={"userId": "mei"}, headers=admin)
    ).status_code == 401
    missing = await pending(api)
    assert (missing.status_code, missing.json()["message"]) == (
        400,
        "userId or anonymousId is required",
    )
    assert (await pending(api, userId="mei", limit="0")).status_code == 400
    assert (await pending(api, userId="mei", after="garbage")).status_code == 400


async def test_listing_pages_through_the_api(api: Api) -> None:
    for minute in range(5):
        await put(api, "mei", str(minute), minutes=minute)
    first = await pending(api, userId="mei", limit="3")
    second = await pending(api, userId="mei", limit="3", after=first.json()["next"])
    assert (keys(first), keys(second)) == (["4", "3", "2"], ["1", "0"])
    assert second.json()["next"] is None


async def test_messages_follow_the_customer_through_an_identity_merge(api: Api) -> None:
    await put(api, "device-1", "before-login")
    await ingest(
        api,
        {"type": "track", "anonymousId": "device-1", "event": "Page Viewed", "properties": {}},
        {"type": "identify", "userId": "mei", "anonymousId": "device-1", "traits": {}},
    )
    await put(api, "mei", "after-login", minutes=1)
    assert keys(await pending(api, userId="mei")) == ["after-login", "before-login"]
    assert keys(await pending(api, anonymousId="device-1")) == ["after-login", "before-login"]
    # userId wins when a request names both.
    assert keys(await pending(api, userId="tom", anonymousId="device-1")) == []


async def test_read_and_ack_from_a_browser(api: Api) -> None:
    message = await put(api, "mei", "a")
    other = await put(api, "mei", "b", minutes=1)
    # What journeyman.js can send without a CORS preflight: text/plain, key in the body.
    beacon = {"Content-Type": "text/plain"}
    response = await api.http.post(
        f"/v1/in-app/{message.id}/read",
        content=f'{{"writeKey": "{WRITE_KEY}", "userId": "mei"}}',
        headers=beacon,
    )
    assert response.status_code == 200, response.text
    assert response.json()["read_at"] is not None
    assert keys(await pending(api, userId="mei")) == ["b", "a"]  # read: after the unread

    response = await api.http.post(f"/v1/in-app/{other.id}/ack", json={"userId": "mei"}, auth=AUTH)
    assert response.status_code == 200, response.text
    assert keys(await pending(api, userId="mei")) == ["a"]


async def test_a_customer_cannot_touch_another_customers_message(api: Api) -> None:
    message = await put(api, "mei", "a")
    for path in (f"/v1/in-app/{message.id}/read", f"/v1/in-app/{message.id}/ack"):
        response = await api.http.post(path, json={"userId": "tom"}, auth=AUTH)
        assert (response.status_code, response.json()["error"]) == (404, "not_found")
    for bad_id in (str(uuid.uuid4()), "not-a-uuid"):
        response = await api.http.post(
            f"/v1/in-app/{bad_id}/ack", json={"userId": "mei"}, auth=AUTH
        )
        assert response.status_code == 404
    row = await api.pool.fetchrow("SELECT read_at, acknowledged_at FROM in_app_messages")
    assert tuple(row) == (None, None)


async def test_read_and_ack_need_a_write_key_and_a_customer(api: Api) -> None:
    message = await put(api, "mei", "a")
    path = f"/v1/in-app/{message.id}/ack"
    assert (await api.http.post(path, json={"userId": "mei"})).status_code == 401
    assert (await api.http.post(path, json={}, auth=AUTH)).status_code == 400
    unknown_field = await api.http.post(path, json={"userId": "mei", "x": 1}, auth=AUTH)
    assert unknown_field.status_code == 400
    assert await api.pool.fetchval("SELECT acknowledged_at FROM in_app_messages") is None


async def test_a_browser_lists_by_a_simple_cross_origin_post(api: Api) -> None:
    # text/plain with the key in the body: no CORS preflight, as journeyman.js sends events.
    for minute in range(3):
        await put(api, "mei", str(minute), minutes=minute)
    body = {"writeKey": WRITE_KEY, "userId": "mei", "limit": 2}
    headers = {"Content-Type": "text/plain", "Origin": "https://shop.example"}
    first = await api.http.post("/v1/in-app", content=json.dumps(body), headers=headers)
    assert first.status_code == 200, first.text
    assert first.headers["access-control-allow-origin"] == "*"
    assert keys(first) == ["2", "1"]
    body["after"] = first.json()["next"]
    second = await api.http.post("/v1/in-app", content=json.dumps(body), headers=headers)
    assert keys(second) == ["0"]
    keyless = await api.http.post("/v1/in-app", json={"userId": "mei"}, headers=headers)
    assert keyless.status_code == 401


# --- customer tokens -----------------------------------------------------------------------


async def issue(api: Api, customer_id: str, **extra: Any) -> str:
    response = await api.http.post(
        "/api/in-app/tokens", json={"customer_id": customer_id, **extra}, headers=api.admin
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


async def require_tokens(api: Api, required: bool) -> None:
    response = await api.http.put(
        "/api/in-app/settings", json={"require_token": required}, headers=api.admin
    )
    assert response.status_code == 200 and response.json() == {"require_token": required}


async def test_required_tokens_close_the_browser_routes_to_guessers(api: Api) -> None:
    message = await put(api, "mei", "a")
    settings = await api.http.get("/api/in-app/settings", headers=api.admin)
    assert settings.json() == {"require_token": False}
    await require_tokens(api, True)

    refused = await pending(api, userId="mei")
    assert refused.status_code == 401 and "token is required" in refused.json()["message"]
    token = await issue(api, "mei")
    allowed = await api.http.get(
        "/v1/in-app", params={"userId": "mei"}, headers=basic(WRITE_KEY, token)
    )
    assert allowed.status_code == 200 and keys(allowed) == ["a"]
    # Mei's token is no good for Tom, and a tampered one is no good at all.
    as_tom = await api.http.get(
        "/v1/in-app", params={"userId": "tom"}, headers=basic(WRITE_KEY, token)
    )
    assert as_tom.status_code == 401
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    forged = await api.http.get(
        "/v1/in-app", params={"userId": "mei"}, headers=basic(WRITE_KEY, tampered)
    )
    assert forged.status_code == 401
    # POSTs carry the token in the body, beside the write key.
    no_token = await api.http.post(
        f"/v1/in-app/{message.id}/ack", json={"writeKey": WRITE_KEY, "userId": "mei"}
    )
    assert no_token.status_code == 401
    acked = await api.http.post(
        f"/v1/in-app/{message.id}/ack",
        json={"writeKey": WRITE_KEY, "userId": "mei", "token": token},
    )
    assert acked.status_code == 200, acked.text

    await require_tokens(api, False)
    assert (await pending(api, userId="mei")).status_code == 200


async def test_a_wrong_token_is_refused_even_where_tokens_are_optional(api: Api) -> None:
    token = await issue(api, "mei")
    response = await api.http.get(
        "/v1/in-app", params={"userId": "tom"}, headers=basic(WRITE_KEY, token)
    )
    assert response.status_code == 401


def test_tokens_expire_and_are_bound_to_the_secret() -> None:
    issued = inapp.issue("secret", "mei", now=T0, ttl=timedelta(minutes=5))
    assert issued.expires_at == T0 + timedelta(minutes=5)
    assert inapp.verify("secret", "mei", issued.token, now=T0 + timedelta(minutes=4))
    assert not inapp.verify("secret", "mei", issued.token, now=T0 + timedelta(minutes=5))
    assert not inapp.verify("other-secret", "mei", issued.token, now=T0)
    assert not inapp.verify("secret", "mei", "v1.99999999999.abc", now=T0)
    assert not inapp.verify("secret", "mei", "garbage", now=T0)
    # A later expiry in a copied token invalidates its signature.
    version, _, signature = issued.token.split(".")
    assert not inapp.verify("secret", "mei", f"{version}.99999999999.{signature}", now=T0)


async def test_token_requests_are_checked(api: Api) -> None:
    response = await api.http.post(
        "/api/in-app/tokens", json={"customer_id": "mei", "ttl_seconds": 0}, headers=api.admin
    )
    assert response.status_code == 400
    response = await api.http.post("/api/in-app/tokens", json={"customer_id": "mei"})
    assert response.status_code == 401


# --- administration -------------------------------------------------------------------------


async def test_admin_lists_a_customers_messages_by_status(api: Api) -> None:
    await put(api, "device-1", "a")
    done = await put(api, "mei", "b", minutes=1)
    await inapp.acknowledge(api.pool, customer_ids=["mei"], id=done.id)
    await ingest(
        api,
        {"type": "track", "anonymousId": "device-1", "event": "Page Viewed", "properties": {}},
        {"type": "identify", "userId": "mei", "anonymousId": "device-1", "traits": {}},
    )
    everything = await api.http.get(
        "/api/in-app", params={"customer_id": "device-1"}, headers=api.admin
    )
    assert everything.status_code == 200, everything.text
    body = everything.json()
    assert body["customer_id"] == "mei"
    assert [(m["send_key"], m["customer_id"]) for m in body["messages"]] == [
        ("a", "device-1"),
        ("b", "mei"),
    ]
    assert body["messages"][1]["acknowledged_at"] is not None
    waiting = await api.http.get(
        "/api/in-app", params={"customer_id": "mei", "status": "pending"}, headers=api.admin
    )
    assert [m["send_key"] for m in waiting.json()["messages"]] == ["a"]


async def test_admin_listing_needs_the_admin_token_and_a_customer(api: Api) -> None:
    response = await api.http.get("/api/in-app", params={"customer_id": "mei"}, auth=AUTH)
    assert response.status_code == 401
    assert (await api.http.get("/api/in-app", headers=api.admin)).status_code == 400
