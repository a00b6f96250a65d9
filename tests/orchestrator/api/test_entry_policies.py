"""Who enters: re-entry policies, entry caps, API entries, paused and archived journeys."""

from __future__ import annotations

import uuid
from typing import Any

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


def journey(entry: str, journey_id: str = "cart") -> str:
    return f"""
id: {journey_id}
name: Entry rules
entry: {entry}
stages:
  - name: only
    goal: {{event: Order Completed}}
    touchpoints:
      - send: {{id: hi, subject: "Hi", body: "Hello"}}
"""


async def send(api: Api, *events: dict[str, Any]) -> None:
    response = await api.http.post("/v1/batch", json={"batch": list(events)}, auth=AUTH)
    assert response.status_code == 200, response.text


async def entries(api: Api) -> list[tuple[str, str | None]]:
    rows = await api.pool.fetch(
        "SELECT o.workflow_id, r.entry_key FROM outbox o JOIN journey_runs r USING (workflow_id)"
        " WHERE (o.payload->>'entry')::boolean ORDER BY o.id"
    )
    return [(r["workflow_id"], r["entry_key"]) for r in rows]


async def finish_runs(api: Api, when: str = "now() - interval '1 hour'") -> None:
    await api.pool.execute(f"UPDATE journey_runs SET status = 'completed', updated_at = {when}")


async def test_once_admits_a_customer_a_single_time(api: Api) -> None:
    await api.deploy(journey("{event: Checkout Started}"))
    await send(api, track("u1", "Checkout Started"))
    await finish_runs(api)
    await send(api, track("u1", "Checkout Started"))
    assert await entries(api) == [("journey/cart/u1", None)]


async def test_after_a_cooldown_the_customer_may_enter_again(api: Api) -> None:
    await api.deploy(journey("{event: Checkout Started, reentry: {after: 30m}}"))
    await send(api, track("u1", "Checkout Started"))
    # While the first run is active, a second entry event goes to it instead.
    await send(api, track("u1", "Checkout Started"))
    assert len(await entries(api)) == 1
    assert await api.count("outbox") == 2
    await finish_runs(api, "now() - interval '10 minutes'")
    await send(api, track("u1", "Checkout Started"))
    assert len(await entries(api)) == 1  # still cooling down
    await finish_runs(api, "now() - interval '31 minutes'")
    await send(api, track("u1", "Checkout Started"))
    assert [w for w, _ in await entries(api)] == ["journey/cart/u1", "journey/cart/u1/2"]


async def test_concurrent_runs_are_keyed_by_an_entry_property(api: Api) -> None:
    await api.deploy(journey("{event: Checkout Started, reentry: {concurrent: cart_id}}"))
    await send(
        api,
        track("u1", "Checkout Started", cart_id="A"),
        track("u1", "Checkout Started", cart_id="B"),
        track("u1", "Checkout Started", cart_id="A"),  # cart A already has its run
        track("u1", "Checkout Started"),  # no key: no new run
    )
    assert await entries(api) == [("journey/cart/u1", "A"), ("journey/cart/u1/2", "B")]
    # A keyed event reaches only its cart's run; an unkeyed one reaches both.
    await api.pool.execute("DELETE FROM outbox")
    await send(api, track("u1", "Order Completed", cart_id="B"), track("u1", "Order Completed"))
    rows = await api.pool.fetch("SELECT workflow_id FROM outbox ORDER BY id")
    assert [r["workflow_id"] for r in rows] == [
        "journey/cart/u1/2",
        "journey/cart/u1",
        "journey/cart/u1/2",
    ]


async def test_entry_caps_limit_total_and_daily_entrants(api: Api) -> None:
    await api.deploy(journey("{event: Checkout Started, cap: {total: 3, per_day: 2}}"))
    await send(api, *(track(f"u{n}", "Checkout Started") for n in range(4)))
    assert len(await entries(api)) == 2  # the daily cap
    await api.pool.execute("UPDATE journey_runs SET entered_at = now() - interval '2 days'")
    await send(api, *(track(f"v{n}", "Checkout Started") for n in range(4)))
    assert len(await entries(api)) == 3  # the total cap


async def test_a_paused_journey_admits_no_one_but_routes_to_its_runs(api: Api) -> None:
    await api.deploy(journey("{event: Checkout Started}"))
    await send(api, track("u1", "Checkout Started"))
    response = await api.http.post("/api/journeys/cart/pause", headers=api.admin)
    assert response.json() == {"id": "cart", "status": "paused"}
    await send(api, track("u2", "Checkout Started"), track("u1", "Order Completed"))
    assert [w for w, _ in await entries(api)] == ["journey/cart/u1"]
    assert await api.count("outbox") == 2  # u1's entry and its goal event

    listed = (await api.http.get("/api/journeys", headers=api.admin)).json()
    assert listed[0]["status"] == "paused"
    await api.http.post("/api/journeys/cart/resume", headers=api.admin)
    await send(api, track("u3", "Checkout Started"))
    assert [w for w, _ in await entries(api)] == ["journey/cart/u1", "journey/cart/u3"]


async def test_an_archived_journey_cannot_be_resumed(api: Api) -> None:
    await api.deploy(journey("{event: Checkout Started}"))
    assert (await api.http.post("/api/journeys/cart/archive", headers=api.admin)).is_success
    response = await api.http.post("/api/journeys/cart/resume", headers=api.admin)
    assert response.status_code == 409
    assert "archived" in response.json()["message"]
    missing = await api.http.post("/api/journeys/nope/pause", headers=api.admin)
    assert missing.status_code == 404


async def test_api_entry_follows_the_same_rules(api: Api) -> None:
    await api.deploy(journey("{api: true}", "onboard"))
    request = {"customer_id": "u1", "properties": {"plan": "pro"}, "message_id": "req-1"}
    response = await api.http.post("/api/journeys/onboard/entries", json=request, headers=api.admin)
    assert response.status_code == 202
    assert response.json() == {
        "entered": True,
        "workflow_id": "journey/onboard/u1",
        "reason": None,
    }
    row = await api.pool.fetchrow("SELECT payload FROM outbox")
    assert row is not None and row["payload"]["event"]["properties"] == {"plan": "pro"}

    retry = await api.http.post("/api/journeys/onboard/entries", json=request, headers=api.admin)
    assert retry.json()["entered"] is False and "duplicate" in retry.json()["reason"]
    again = {"customer_id": "u1"}
    second = await api.http.post("/api/journeys/onboard/entries", json=again, headers=api.admin)
    assert second.json()["entered"] is False and "once" in second.json()["reason"]
    assert await api.count("outbox") == 1


async def test_api_entry_is_refused_where_the_journey_does_not_allow_it(api: Api) -> None:
    await api.deploy(journey("{event: Checkout Started}"))
    body = {"customer_id": "u1"}
    response = await api.http.post("/api/journeys/cart/entries", json=body, headers=api.admin)
    assert response.status_code == 409
    assert "does not accept API entries" in response.json()["message"]
    bad = await api.http.post("/api/journeys/cart/entries", json={}, headers=api.admin)
    assert bad.status_code in (400, 422)
    assert await api.count("outbox") == 0 and await api.count("events") == 0


async def test_diff_names_added_removed_and_changed_steps(api: Api) -> None:
    await api.deploy(journey("{event: Checkout Started}"))
    changed = """
id: cart
name: Entry rules
entry: {event: Checkout Started}
stages:
  - name: only
    goal: {event: Order Completed}
    touchpoints:
      - send: {id: hi, subject: "Hi there", body: "Hello"}
      - wait: 1d
  - name: after
    touchpoints:
      - send: {id: bye, subject: "Bye", body: "Bye"}
"""
    response = await api.http.post("/api/journeys/diff", content=changed, headers=api.admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["steps_changed"] == ["hi"]
    assert body["steps_added"] == ["only.2", "bye"]
    assert body["steps_removed"] == []
    assert body["stages_added"] == ["after"]
    assert body["stages_changed"] == ["only"]
    assert body["unchanged"] is False
    # No Temporal here: the diff still answers, without customer counts.
    assert body["customers_waiting"] is None

    same = await api.http.post(
        "/api/journeys/diff", content=journey("{event: Checkout Started}"), headers=api.admin
    )
    assert same.json()["unchanged"] is True
    broken = await api.http.post("/api/journeys/diff", content="id: [", headers=api.admin)
    assert broken.status_code == 400
