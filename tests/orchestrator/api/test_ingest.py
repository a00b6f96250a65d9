"""Segment-spec ingest: auth, validation, limits, dedupe, gzip, routing to the outbox."""

from __future__ import annotations

import gzip
import json
import uuid
from typing import Any

import pytest

from .conftest import WRITE_KEY, Api

AUTH = (WRITE_KEY, "")


def track(user: str, event: str, **props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": event,
        "properties": props,
        "messageId": str(uuid.uuid4()),
    }


async def test_track_is_stored_and_entry_events_reach_the_outbox(api: Api) -> None:
    await api.deploy()
    entry = track("u1", "Signed Up", source="web")
    response = await api.http.post("/v1/track", json=entry, auth=AUTH)
    assert response.status_code == 200
    assert response.json() == {"success": True, "accepted": 1, "duplicates": 0, "rejected": []}
    row = await api.pool.fetchrow("SELECT journey_id, customer_id, payload FROM outbox")
    assert row["journey_id"] == "lifecycle" and row["customer_id"] == "u1"
    assert row["payload"]["entry"] is True
    assert row["payload"]["event"]["message_id"] == entry["messageId"]
    run = await api.pool.fetchrow("SELECT version, workflow_id FROM journey_runs")
    assert run["workflow_id"] == "journey/lifecycle/u1"


async def test_events_that_concern_no_journey_never_reach_the_outbox(api: Api) -> None:
    await api.deploy()
    batch = {
        "batch": [
            track("u2", "Signed Up", source="partner"),  # entry filter does not match
            track("u2", "Product Viewed"),  # goal, but the customer is in no run
            track("u2", "Newsletter Opened"),  # no journey reacts to it
        ]
    }
    response = await api.http.post("/v1/batch", json=batch, auth=AUTH)
    assert response.status_code == 200 and response.json()["accepted"] == 3
    assert await api.count("events") == 3
    assert await api.count("outbox") == 0


async def test_goal_events_of_a_customer_in_a_run_are_routed(api: Api) -> None:
    await api.deploy()
    await api.http.post("/v1/t", json=track("u3", "Signed Up", source="web"), auth=AUTH)
    await api.http.post("/v1/t", json=track("u3", "Product Viewed"), auth=AUTH)
    await api.http.post("/v1/t", json=track("u3", "Newsletter Opened"), auth=AUTH)
    payloads = [
        r["payload"] for r in await api.pool.fetch("SELECT payload FROM outbox ORDER BY id")
    ]
    assert [(p["entry"], p["event"]["name"]) for p in payloads] == [
        (True, "Signed Up"),
        (False, "Product Viewed"),
    ]


async def test_repeated_message_id_is_accepted_and_ignored(api: Api) -> None:
    await api.deploy()
    entry = track("u4", "Signed Up", source="web")
    first = await api.http.post("/v1/track", json=entry, auth=AUTH)
    again = await api.http.post("/v1/batch", json={"batch": [entry]}, auth=AUTH)
    assert first.json()["accepted"] == 1
    assert again.status_code == 200 and again.json() == {
        "success": True,
        "accepted": 0,
        "duplicates": 1,
        "rejected": [],
    }
    assert await api.count("events") == 1 and await api.count("outbox") == 1


async def test_identify_merges_traits_into_the_profile(api: Api) -> None:
    for traits in ({"email": "a@example.com", "city": "Taipei"}, {"city": "Seoul", "age": 31}):
        body = {"userId": "u5", "traits": traits, "messageId": str(uuid.uuid4())}
        assert (await api.http.post("/v1/i", json=body, auth=AUTH)).status_code == 200
    traits = await api.pool.fetchval("SELECT traits FROM profiles WHERE customer_id = 'u5'")
    assert traits == {"email": "a@example.com", "city": "Seoul", "age": 31}


async def test_write_key_in_body_and_gzip_body_are_accepted(api: Api) -> None:
    body = {**track("u6", "Page Seen"), "writeKey": WRITE_KEY}
    response = await api.http.post(
        "/v1/track",
        content=gzip.compress(json.dumps(body).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert await api.count("events") == 1


@pytest.mark.parametrize(
    ("auth", "message"),
    [(None, "a write key is required"), (("wrong", ""), "unknown")],
)
async def test_wrong_or_missing_write_key_is_401_and_stores_nothing(
    api: Api, auth: tuple[str, str] | None, message: str
) -> None:
    if auth is None:
        response = await api.http.post("/v1/track", json=track("u7", "Signed Up"))
    else:
        response = await api.http.post("/v1/track", json=track("u7", "Signed Up"), auth=auth)
    assert response.status_code == 401
    assert message in response.json()["message"]
    assert await api.count("events") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "track", "userId": "u8"}, "event"),
        ({"type": "track", "event": "Signed Up"}, "(body)"),
        (
            {
                "batch": [
                    {"type": "track", "userId": "u8"},
                    {"type": "track", "userId": "u8", "event": "A", "timestamp": "soon"},
                ]
            },
            "batch[0].event",
        ),
        ({"batch": [{"type": "unknown", "userId": "u8"}]}, "batch[0].type"),
        ({"batch": []}, "batch"),
        ({"type": "track", "userId": "u" * 161, "event": "A"}, "userId"),
    ],
)
async def test_malformed_input_is_400_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    path = "/v1/batch" if "batch" in body else "/v1/track"
    response = await api.http.post(path, json=body, auth=AUTH)
    assert response.status_code == 400
    assert field in [f["field"] for f in response.json()["fields"]]
    assert await api.count("events") == 0


async def test_invalid_json_is_400(api: Api) -> None:
    response = await api.http.post("/v1/track", content=b"{not json", auth=AUTH)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]


async def test_body_over_the_limit_is_413_even_when_gzipped(api: Api) -> None:
    big = track("u9", "Signed Up", blob="x" * 70_000)
    plain = await api.http.post("/v1/track", json=big, auth=AUTH)
    packed = await api.http.post(
        "/v1/track",
        content=gzip.compress(json.dumps(big).encode()),
        headers={"Content-Encoding": "gzip"},
        auth=AUTH,
    )
    assert plain.status_code == 413 and packed.status_code == 413
    assert await api.count("events") == 0
