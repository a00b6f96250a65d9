"""Batches as one set of writes: duplicates, many customers, and each customer's order kept."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from journeyman.orchestrator.storage.outbox import OUTBOX_CHANNEL
from journeyman.orchestrator.storage.pool import connect

from .conftest import WRITE_KEY, Api

AUTH = (WRITE_KEY, "")


def track(user: str, event: str, *, anon: bool = False, **props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "anonymousId" if anon else "userId": user,
        "event": event,
        "properties": props,
        "messageId": str(uuid.uuid4()),
    }


def identify(user: str, anon: str | None = None, **traits: Any) -> dict[str, Any]:
    message = {"type": "identify", "userId": user, "traits": traits, "messageId": str(uuid.uuid4())}
    if anon is not None:
        message["anonymousId"] = anon
    return message


async def post(api: Api, *messages: dict[str, Any]) -> dict[str, Any]:
    response = await api.http.post("/v1/batch", json={"batch": list(messages)}, auth=AUTH)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def routed(api: Api) -> list[tuple[str, bool, str]]:
    """(workflow id, entry?, event name) of every outbox row, in delivery order."""
    rows = await api.pool.fetch("SELECT workflow_id, payload FROM outbox ORDER BY id")
    return [(r["workflow_id"], r["payload"]["entry"], r["payload"]["event"]["name"]) for r in rows]


async def test_duplicates_in_a_batch_and_of_earlier_batches_are_stored_once(api: Api) -> None:
    await api.deploy()
    entry = track("u1", "Signed Up", source="web")
    goal = track("u1", "Product Viewed")
    other = track("u2", "Product Viewed")
    first = await post(api, entry, entry, goal, other, goal)
    assert (first["accepted"], first["duplicates"]) == (3, 2)
    later = track("u2", "Signed Up", source="web")
    second = await post(api, other, later, goal, later, entry)
    assert (second["accepted"], second["duplicates"]) == (1, 4)
    stored = await api.pool.fetch("SELECT message_id FROM events ORDER BY id")
    assert sorted(r["message_id"] for r in stored) == sorted(
        m["messageId"] for m in (entry, goal, other, later)
    )
    # Each stored once, so routed once: u1's entry and goal, u2's entry.
    assert await routed(api) == [
        ("journey/lifecycle/u1", True, "Signed Up"),
        ("journey/lifecycle/u1", False, "Product Viewed"),
        ("journey/lifecycle/u2", True, "Signed Up"),
    ]


async def test_a_customers_identify_and_track_keep_their_order(api: Api) -> None:
    await api.deploy()
    answer = await post(
        api,
        track("anon-7", "Product Viewed", anon=True),  # before signing up: no run to reach
        identify("cust-7", "anon-7", plan="free", city="Lyon"),
        track("cust-7", "Signed Up", source="web"),
        identify("cust-7", plan="pro"),
        track("cust-7", "Product Viewed"),  # the goal of the run just entered
        identify("cust-7", plan="vip", consent={"email": True}),
    )
    assert (answer["accepted"], answer["duplicates"]) == (6, 0)
    profile = await api.pool.fetchrow(
        "SELECT traits, consent FROM profiles WHERE customer_id = $1", "cust-7"
    )
    assert profile is not None
    assert (profile["traits"], profile["consent"]) == (
        {"plan": "vip", "city": "Lyon"},
        {"email": True},
    )
    owners = await api.pool.fetch("SELECT DISTINCT customer_id FROM events")
    assert [r["customer_id"] for r in owners] == ["cust-7"]
    assert await api.count("customer_merges") == 1
    assert await routed(api) == [
        ("journey/lifecycle/cust-7", True, "Signed Up"),
        ("journey/lifecycle/cust-7", False, "Product Viewed"),
    ]
    metrics = await api.pool.fetchrow("SELECT * FROM customer_metrics")
    assert metrics is not None and metrics["customer_id"] == "cust-7"


async def test_an_anonymous_id_that_sorts_after_the_user_id_is_joined_all_the_same(
    api: Api,
) -> None:
    # The batch is taken in customer order: here the identify comes before the anonymous
    # visitor's own events, which are then stored for the customer it was joined to.
    await api.deploy()
    await post(
        api,
        track("zz-anon", "Product Viewed", anon=True),
        identify("aa-user", "zz-anon", plan="pro"),
        track("zz-anon", "Checkout Started", anon=True),
    )
    owners = await api.pool.fetch("SELECT event, customer_id FROM events WHERE type = 'track'")
    assert {(r["event"], r["customer_id"]) for r in owners} == {
        ("Product Viewed", "aa-user"),
        ("Checkout Started", "aa-user"),
    }
    assert await api.pool.fetchval("SELECT count(*) FROM customer_metrics") == 1


async def test_a_batch_over_many_customers_stores_and_routes_each(api: Api) -> None:
    await api.deploy()
    messages = []
    for n in range(120):
        customer = f"c{n:03d}"
        messages.append(identify(customer, city="Taipei" if n % 2 else "Seoul"))
        messages.append(track(customer, "Signed Up", source="web" if n % 3 else "partner"))
        if n % 4 == 0:
            messages.append(track(customer, "Product Viewed"))
    answer = await post(api, *messages)
    assert (answer["accepted"], answer["duplicates"]) == (len(messages), 0)
    assert await api.count("events") == len(messages)
    assert await api.count("profiles") == await api.count("customer_metrics") == 120
    entered = {n for n in range(120) if n % 3}
    runs = await api.pool.fetch("SELECT workflow_id FROM journey_runs ORDER BY workflow_id")
    assert [r["workflow_id"] for r in runs] == [
        f"journey/lifecycle/c{n:03d}" for n in sorted(entered)
    ]
    expected = []
    for n in range(120):
        if n in entered:
            expected.append((f"journey/lifecycle/c{n:03d}", True, "Signed Up"))
            if n % 4 == 0:
                expected.append((f"journey/lifecycle/c{n:03d}", False, "Product Viewed"))
    assert await routed(api) == expected
    cities = await api.pool.fetch("SELECT customer_id, traits->>'city' AS city FROM profiles")
    assert {r["customer_id"]: r["city"] for r in cities} == {
        f"c{n:03d}": "Taipei" if n % 2 else "Seoul" for n in range(120)
    }


async def test_a_message_whose_type_is_not_text_is_rejected_alone(api: Api) -> None:
    good = track("u1", "Product Viewed")
    answer = await post(api, good, {"type": {"nested": 1}, "userId": "u1"}, {"type": ["track"]})
    assert (answer["accepted"], [r["index"] for r in answer["rejected"]]) == (1, [1, 2])
    assert answer["rejected"][0]["fields"][0]["field"] == "batch[1].type"


async def test_the_dispatcher_is_woken_when_a_batch_routes(api: Api) -> None:
    await api.deploy()
    listener: asyncpg.Connection = await connect(api.services.database_url)
    woken = asyncio.Event()
    try:
        await listener.add_listener(OUTBOX_CHANNEL, lambda *_: woken.set())
        await post(api, track("u1", "Product Viewed"))  # concerns no run: nothing to wake
        await asyncio.sleep(0.3)
        assert not woken.is_set()
        await post(api, track("u1", "Signed Up", source="web"))
        await asyncio.wait_for(woken.wait(), 5)
    finally:
        await listener.close()
    assert await api.count("outbox") == 1
