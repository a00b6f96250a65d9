"""The whole Segment HTTP tracking spec: six message types, batches, timestamps, limits."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from journeyman.orchestrator.ingest.segment import (
    MAX_MESSAGE_BYTES,
    Alias,
    Group,
    correct_time,
    message_size,
    normalise,
    parse_message,
)

from .conftest import WRITE_KEY, Api

AUTH = (WRITE_KEY, "")

EXAMPLES: dict[str, dict[str, Any]] = {
    "track": {"userId": "u1", "event": "Order Completed", "properties": {"total": 42}},
    "identify": {"userId": "u1", "traits": {"email": "mei@example.com"}},
    "page": {"anonymousId": "a1", "name": "Pricing", "category": "Docs", "properties": {}},
    "screen": {"userId": "u1", "name": "Wallet", "properties": {"coupons": 3}},
    "group": {"userId": "u1", "groupId": "acme", "traits": {"plan": "enterprise"}},
    "alias": {"userId": "u1", "previousId": "a1"},
}
SHORT = {"track": "t", "identify": "i", "page": "p", "screen": "s", "group": "g", "alias": "a"}


def message(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, **EXAMPLES[kind], "messageId": str(uuid.uuid4()), **extra}


async def stored(api: Api, message_id: str) -> dict[str, Any]:
    row = await api.pool.fetchrow("SELECT * FROM events WHERE message_id = $1", message_id)
    assert row is not None, f"{message_id} was not stored"
    return dict(row)


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
async def test_every_message_type_has_its_path_and_short_path(api: Api, kind: str) -> None:
    for path in (kind, SHORT[kind]):
        sent = message(kind)
        response = await api.http.post(f"/v1/{path}", json=sent, auth=AUTH)
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 1
        row = await stored(api, sent["messageId"])
        assert row["type"] == kind
        assert row["source_id"] == "default"


async def test_page_and_screen_names_are_the_event_and_join_the_properties(api: Api) -> None:
    page = message("page", properties={"url": "https://shop.example/pricing", "name": "old"})
    screen = message("screen")
    unnamed = message("page", name=None, category=None, properties={"url": "/"})
    for sent in (page, screen, unnamed):
        path = f"/v1/{sent['type']}"
        assert (await api.http.post(path, json=sent, auth=AUTH)).status_code == 200
    row = await stored(api, page["messageId"])
    assert (row["event"], row["customer_id"], row["anonymous_id"]) == ("Pricing", "a1", "a1")
    # The call's name wins over a property of the same name, as in Segment's libraries.
    assert row["properties"] == {
        "url": "https://shop.example/pricing",
        "name": "Pricing",
        "category": "Docs",
    }
    row = await stored(api, screen["messageId"])
    assert (row["event"], row["properties"]) == ("Wallet", {"coupons": 3, "name": "Wallet"})
    row = await stored(api, unnamed["messageId"])
    assert (row["event"], row["properties"]) == (None, {"url": "/"})


async def test_group_and_alias_are_stored_with_their_ids(api: Api) -> None:
    group, alias = message("group"), message("alias")
    for sent in (group, alias):
        assert (await api.http.post(f"/v1/{sent['type']}", json=sent, auth=AUTH)).status_code == 200
    row = await stored(api, group["messageId"])
    assert (row["customer_id"], row["traits"]) == ("u1", {"plan": "enterprise"})
    row = await stored(api, alias["messageId"])
    assert (row["customer_id"], row["user_id"]) == ("u1", "u1")


def test_group_and_alias_ids_reach_the_incoming_event() -> None:
    group = normalise(parse_message(message("group"), Group))
    alias = normalise(parse_message(message("alias"), Alias))
    assert (group.group_id, group.customer_id, group.traits) == (
        "acme",
        "u1",
        {"plan": "enterprise"},
    )
    assert (alias.customer_id, alias.previous_id, alias.user_id) == ("u1", "a1", "u1")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("group", {"userId": "u1", "traits": {}}, "groupId"),
        ("alias", {"userId": "u1"}, "previousId"),
        ("alias", {"anonymousId": "a1", "previousId": "a0"}, "userId"),
        ("page", {"name": "Home"}, "(body)"),
        ("screen", {"userId": "u1", "properties": []}, "properties"),
        ("track", {"userId": "u1", "event": "A", "timestamp": "yesterday"}, "timestamp"),
        ("track", {"userId": "u1", "event": "A", "timestamp": 1700000000}, "timestamp"),
        ("identify", {"userId": "u1", "sentAt": "2024-02-30T00:00:00Z"}, "sentAt"),
        ("track", {"type": "identify", "userId": "u1", "event": "A"}, "type"),
    ],
)
async def test_an_invalid_single_message_is_400_naming_the_field(
    api: Api, path: str, body: dict[str, Any], field: str
) -> None:
    response = await api.http.post(f"/v1/{path}", json=body, auth=AUTH)
    assert response.status_code == 400, response.text
    assert field in [f["field"] for f in response.json()["fields"]]
    assert await api.count("events") == 0


async def test_a_batch_mixes_every_type_and_shares_its_context(api: Api) -> None:
    messages = [message(kind) for kind in sorted(EXAMPLES)]
    messages[0]["context"] = {"locale": "zh-TW", "device": {"type": "mobile"}}
    batch = {
        "batch": messages,
        "context": {"locale": "en-US", "timezone": "Asia/Taipei", "channel": "web"},
    }
    response = await api.http.post("/v1/batch", json=batch, auth=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "accepted": 6, "duplicates": 0, "rejected": []}
    contexts = {m["type"]: (await stored(api, m["messageId"]))["context"] for m in messages}
    # The message's own context wins over the batch's, key by key.
    assert contexts[messages[0]["type"]] == {
        "locale": "zh-TW",
        "timezone": "Asia/Taipei",
        "channel": "web",
        "device": {"type": "mobile"},
    }
    assert contexts[messages[1]["type"]] == batch["context"]


async def test_context_is_kept_as_sent(api: Api) -> None:
    context = {
        "campaign": {"name": "anti-aging", "source": "newsletter", "medium": "email"},
        "device": {"type": "tablet", "manufacturer": "Apple"},
        "locale": "ko-KR",
        "timezone": "Asia/Seoul",
        "ip": "203.0.113.9",
        "library": {"name": "analytics.js", "version": "5.0"},
        "traits": {"email": "mei@example.com"},
    }
    sent = message("track", context=context, integrations={"All": False})
    assert (await api.http.post("/v1/t", json=sent, auth=AUTH)).status_code == 200
    assert (await stored(api, sent["messageId"]))["context"] == context


# --- Timestamps -------------------------------------------------------------------------


def iso(value: datetime) -> str:
    return value.isoformat()


async def test_clock_skew_is_corrected_from_sent_at(api: Api) -> None:
    # The device's clock is two hours fast: it says the call was made at 12:00 and the request
    # left at 12:05; the event happened five minutes before the server received it.
    device = datetime(2031, 1, 1, 12, 0, tzinfo=UTC)
    sent = message("track", timestamp=iso(device), sentAt=iso(device + timedelta(minutes=5)))
    before = datetime.now(UTC)
    assert (await api.http.post("/v1/track", json=sent, auth=AUTH)).status_code == 200
    row = await stored(api, sent["messageId"])
    assert before <= row["received_at"] <= datetime.now(UTC)
    assert row["occurred_at"] == row["received_at"] - timedelta(minutes=5)
    assert row["sent_at"] == device + timedelta(minutes=5)


async def test_a_batch_sent_at_applies_to_its_messages_unless_they_carry_their_own(
    api: Api,
) -> None:
    device = datetime(2020, 6, 1, 8, 0, tzinfo=UTC)
    own = message("track", timestamp=iso(device), sentAt=iso(device + timedelta(seconds=30)))
    shared = message("track", timestamp=iso(device))
    original = message("page", originalTimestamp=iso(device - timedelta(minutes=1)))
    batch = {"batch": [own, shared, original], "sentAt": iso(device + timedelta(hours=1))}
    assert (await api.http.post("/v1/b", json=batch, auth=AUTH)).status_code == 200
    rows = [await stored(api, m["messageId"]) for m in (own, shared, original)]
    received = {r["received_at"] for r in rows}
    assert len(received) == 1, "receivedAt is read once per request"
    (now,) = received
    assert [r["occurred_at"] for r in rows] == [
        now - timedelta(seconds=30),
        now - timedelta(hours=1),
        now - timedelta(hours=1, minutes=1),
    ]
    assert [r["sent_at"] for r in rows] == [
        device + timedelta(seconds=30),
        device + timedelta(hours=1),
        device + timedelta(hours=1),
    ]


async def test_times_without_sent_at_are_trusted_and_naive_times_are_utc(api: Api) -> None:
    history = message("track", timestamp="2019-03-04T05:06:07.891")  # no zone: UTC
    zoned = message("identify", timestamp="2019-03-04T13:06:07+08:00")
    bare = message("group")  # no time at all: it happened when it was received
    batch = {"batch": [history, zoned, bare]}
    assert (await api.http.post("/v1/batch", json=batch, auth=AUTH)).status_code == 200
    row = await stored(api, history["messageId"])
    assert row["occurred_at"] == datetime(2019, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)
    assert row["sent_at"] is None
    row = await stored(api, zoned["messageId"])
    assert row["occurred_at"] == datetime(2019, 3, 4, 5, 6, 7, tzinfo=UTC)
    row = await stored(api, bare["messageId"])
    assert row["occurred_at"] == row["received_at"]


async def test_a_received_at_sent_by_the_client_is_ignored(api: Api) -> None:
    sent = message("track", receivedAt="2001-01-01T00:00:00Z")
    assert (await api.http.post("/v1/track", json=sent, auth=AUTH)).status_code == 200
    row = await stored(api, sent["messageId"])
    assert row["received_at"] > datetime(2020, 1, 1, tzinfo=UTC)


def test_correct_time_follows_the_spec_formula() -> None:
    received = datetime(2025, 1, 1, 0, 0, 10, tzinfo=UTC)
    original = datetime(2025, 1, 1, 3, 0, 0, tzinfo=UTC)
    sent = datetime(2025, 1, 1, 3, 0, 4, tzinfo=UTC)
    assert correct_time(original, sent, received) == datetime(2025, 1, 1, 0, 0, 6, tzinfo=UTC)
    assert correct_time(original, None, received) == original
    assert correct_time(None, sent, received) == received


async def test_an_unparseable_time_rejects_only_its_message(api: Api) -> None:
    good = message("track")
    bad = message("track", timestamp="31/12/2024 10:00")
    response = await api.http.post("/v1/batch", json={"batch": [good, bad]}, auth=AUTH)
    assert response.status_code == 200
    (rejected,) = response.json()["rejected"]
    assert (rejected["index"], rejected["messageId"], rejected["code"]) == (
        1,
        bad["messageId"],
        "invalid",
    )
    assert rejected["fields"][0]["field"] == "batch[1].timestamp"
    assert "ISO-8601" in rejected["message"]
    assert await api.count("events") == 1


async def test_an_unparseable_batch_sent_at_is_400(api: Api) -> None:
    batch = {"batch": [message("track")], "sentAt": "now"}
    response = await api.http.post("/v1/batch", json=batch, auth=AUTH)
    assert response.status_code == 400
    assert [f["field"] for f in response.json()["fields"]] == ["sentAt"]
    assert await api.count("events") == 0


# --- Limits -----------------------------------------------------------------------------


def padded(kind: str, size: int) -> dict[str, Any]:
    """A message whose compact JSON is exactly ``size`` bytes."""
    sent = message(kind, properties={"pad": ""})
    sent["properties"]["pad"] = "x" * (size - message_size(sent))
    assert message_size(sent) == size
    return sent


async def test_a_message_may_take_32_kb_and_not_a_byte_more(api: Api) -> None:
    fits = padded("track", MAX_MESSAGE_BYTES)
    response = await api.http.post("/v1/track", json=fits, auth=AUTH)
    assert response.status_code == 200, response.text
    over = padded("track", MAX_MESSAGE_BYTES + 1)
    response = await api.http.post("/v1/track", json=over, auth=AUTH)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert str(MAX_MESSAGE_BYTES) in response.json()["message"]
    assert await api.count("events") == 1


async def test_a_multibyte_message_is_measured_in_bytes(api: Api) -> None:
    sent = message("identify", traits={"name": "王小明" * 4000})  # 36,000 bytes in UTF-8
    assert len(json.dumps(sent, ensure_ascii=False)) < MAX_MESSAGE_BYTES
    response = await api.http.post("/v1/identify", json=sent, auth=AUTH)
    assert response.status_code == 413


async def test_a_batch_rejects_bad_messages_alone_and_says_why(api: Api) -> None:
    good = [message("track"), message("identify"), message("page")]
    too_large = padded("screen", MAX_MESSAGE_BYTES + 1)
    no_id = {"type": "track", "event": "Signed Up", "messageId": "m-no-id"}
    unknown = {"type": "purchase", "userId": "u1"}
    batch = {"batch": [good[0], too_large, no_id, good[1], unknown, "text", good[2]]}
    response = await api.http.post("/v1/batch", json=batch, auth=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["success"], body["accepted"], body["duplicates"]) == (True, 3, 0)
    assert [(r["index"], r["messageId"], r["code"]) for r in body["rejected"]] == [
        (1, too_large["messageId"], "too_large"),
        (2, "m-no-id", "invalid"),
        (4, None, "invalid"),
        (5, None, "invalid"),
    ]
    assert "either userId or anonymousId is required" in body["rejected"][1]["message"]
    assert body["rejected"][2]["fields"] == [
        {
            "field": "batch[4].type",
            "message": "unknown message type 'purchase': one of track, identify, page, "
            "screen, group, alias",
        }
    ]
    stored_ids = {r["message_id"] for r in await api.pool.fetch("SELECT message_id FROM events")}
    assert stored_ids == {m["messageId"] for m in good}


async def test_a_batch_with_every_message_rejected_is_400_and_stores_nothing(api: Api) -> None:
    batch = {"batch": [{"type": "track", "userId": "u1"}, padded("track", MAX_MESSAGE_BYTES + 1)]}
    response = await api.http.post("/v1/batch", json=batch, auth=AUTH)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request"
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (0, "invalid"),
        (1, "too_large"),
    ]
    assert "batch[0].event" in [f["field"] for f in body["fields"]]
    assert await api.count("events") == 0


async def test_a_request_over_the_body_limit_is_413_whatever_its_messages(api: Api) -> None:
    # The fixture's body limit is 64 KiB: three messages of 30 KB each pass alone, not together.
    batch = {"batch": [padded("track", 30_000) for _ in range(3)]}
    response = await api.http.post("/v1/batch", json=batch, auth=AUTH)
    assert response.status_code == 413
    assert await api.count("events") == 0


# --- Dedupe -----------------------------------------------------------------------------


async def test_a_message_id_is_stored_once_within_and_across_batches(api: Api) -> None:
    first, second = message("track"), message("identify")
    batch = {"batch": [first, second, first, {**first, "event": "Changed Meanwhile"}]}
    response = await api.http.post("/v1/batch", json=batch, auth=AUTH)
    assert response.json() == {"success": True, "accepted": 2, "duplicates": 2, "rejected": []}
    response = await api.http.post("/v1/batch", json={"batch": [second, first]}, auth=AUTH)
    assert response.json() == {"success": True, "accepted": 0, "duplicates": 2, "rejected": []}
    rows = await api.pool.fetch("SELECT message_id, event FROM events ORDER BY id")
    assert sorted(r["message_id"] for r in rows) == sorted(
        [first["messageId"], second["messageId"]]
    )


# --- Bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/plain", "text/plain;charset=UTF-8", "application/json"]
)
async def test_beacon_bodies_sent_as_text_plain_are_read_as_json(
    api: Api, content_type: str
) -> None:
    # navigator.sendBeacon cannot set headers: the write key travels in the body.
    sent = {**message("page"), "writeKey": WRITE_KEY}
    response = await api.http.post(
        "/v1/p", content=json.dumps(sent).encode(), headers={"Content-Type": content_type}
    )
    assert response.status_code == 200, response.text
    assert (await stored(api, sent["messageId"]))["event"] == "Pricing"


async def test_a_text_plain_body_that_is_not_json_is_400(api: Api) -> None:
    response = await api.http.post(
        "/v1/track", content=b"userId=u1&event=A", headers={"Content-Type": "text/plain"}, auth=AUTH
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]


async def test_identify_traits_sent_in_context_as_rudderstack_does_reach_the_profile(
    api: Api,
) -> None:
    sent = message("identify", traits={"city": "Seoul"})
    sent["context"] = {"traits": {"email": "mei@example.com", "city": "Taipei"}}
    assert (await api.http.post("/v1/identify", json=sent, auth=AUTH)).status_code == 200
    row = await stored(api, sent["messageId"])
    assert row["traits"] == {"email": "mei@example.com", "city": "Seoul"}
    assert row["context"] == sent["context"]
    profile = await api.pool.fetchval("SELECT traits FROM profiles WHERE customer_id = 'u1'")
    assert profile == {"email": "mei@example.com", "city": "Seoul"}
