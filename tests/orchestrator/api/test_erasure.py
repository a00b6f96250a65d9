"""Erasure: a customer and all their ids leave every table, their running journeys end, the
funnel stays exact, and the same id coming back later is a new customer."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

from .conftest import Api
from .test_customers import (
    PRO_SEGMENT,
    Live,
    checkout,
    deploy_segment,
    eventually,
    join,
    journey_id,
    live,
    message,
    send,
    track,
)

__all__ = ["live"]  # the fixture, shared with the customer view tests

EXPERIMENT = """
id: {jid}
name: Checkout with a test
entry: {{event: Checkout Started}}
stages:
  - name: cart
    touchpoints:
      - id: subject-test
        experiment:
          variants:
            - {{name: control, weight: 1, then: [{{send: {{subject: "Your cart", body: "Hi"}}}}]}}
            - {{name: urgent, weight: 1, then: [{{send: {{subject: "Last chance", body: "Hi"}}}}]}}
          control: control
          metric: {{event: Order Completed, within: 3d}}
      - id: await-order
        wait_for: {{event: Order Completed, timeout: 2d}}
"""

# Every table that holds something about a customer, and how to find their rows.
PERSONAL = {
    "profiles": "customer_id = ANY($1::text[])",
    "events": "customer_id = ANY($1::text[]) OR user_id = ANY($1::text[])"
    " OR anonymous_id = ANY($1::text[])",
    "outbox": "customer_id = ANY($1::text[])",
    "customer_metrics": "customer_id = ANY($1::text[])",
    "segment_memberships": "customer_id = ANY($1::text[])",
    "customer_aliases": "customer_id = ANY($1::text[]) OR alias = ANY($1::text[])",
    "customer_merges": "from_id = ANY($1::text[]) OR into_id = ANY($1::text[])",
    "experiment_assignments": "customer_id = ANY($1::text[])",
    "journey_runs": "customer_id = ANY($1::text[])",
    "stage_transitions": "customer_id = ANY($1::text[])",
    "in_app_messages": "customer_id = ANY($1::text[])",
    "subscription_preferences": "customer_id = ANY($1::text[])",
    "suppressions": "customer_id = ANY($1::text[])",
}


async def rows_of(api: Api, ids: list[str]) -> dict[str, int]:
    found = {}
    for table, where in PERSONAL.items():
        found[table] = int(
            await api.pool.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", ids)
        )
    return found


async def funnel(api: Api, jid: str) -> dict[str, Any]:
    response = await api.http.get(f"/api/journeys/{jid}/funnel", headers=api.admin)
    assert response.status_code == 200, response.text
    [stage] = response.json()["stages"]
    return {k: stage[k] for k in ("entered", "current", "exited")}


async def test_erasure_removes_the_customer_everywhere_and_ends_their_journey(live: Live) -> None:
    api = live.api
    jid = journey_id("erase")
    await api.deploy(EXPERIMENT.format(jid=jid))
    await deploy_segment(api)
    erin = ["erin-42", "erin-device"]
    for user, device in (("erin-42", "erin-device"), ("other-1", "other-device")):
        await send(
            api,
            message("track", anonymousId=device, event="Product Viewed", properties={"sku": "1"}),
            message(
                "identify",
                userId=user,
                anonymousId=device,
                traits={"email": f"{user}@shop.example", "plan": "pro", "first_name": "Erin"},
            ),
            track(user, "Checkout Started", cart={"total": 40}),
        )
    await join(api, "pro", "erin-42", "other-1")
    await api.pool.execute(
        "INSERT INTO customer_metrics (customer_id, order_count) VALUES ('erin-42', 2)"
        " ON CONFLICT (customer_id) DO UPDATE SET order_count = 2"
    )
    for user in ("erin-42", "other-1"):
        await live.waiting(user, "await-order")
    # Added once the sends went out, so they suppress nothing here.
    await api.pool.execute(
        "INSERT INTO in_app_messages (customer_id, send_key, title, body)"
        " VALUES ('erin-42', 'k-inbox', 'Hi', 'Welcome')"
    )
    await api.pool.execute(
        "INSERT INTO subscription_preferences (customer_id, group_key, subscribed, source)"
        " VALUES ('erin-42', 'email:marketing', false, 'api')"
    )
    await api.pool.execute(
        "INSERT INTO suppressions (channel, customer_id, address, reason) VALUES"
        " ('email', 'erin-42', NULL, 'manual'), ('email', 'erin-42', 'erin@shop.example', 'bounce')"
    )
    before = await rows_of(api, erin)
    assert all(before[table] for table in PERSONAL), before  # the test covers every table
    assert await funnel(api, jid) == {"entered": 2, "current": 2, "exited": 0}
    other_before = await rows_of(api, ["other-1", "other-device"])
    delivered = await api.pool.fetchrow(
        "SELECT recipient, subject FROM deliveries WHERE customer_id = 'erin-42'"
    )
    assert delivered is not None and delivered["recipient"] == "erin-42@shop.example"

    # Erasing by the alias erases the customer it stands for, with all their ids.
    response = await api.http.delete("/api/customers/erin-device", headers=api.admin)
    assert response.status_code == 200, response.text
    body = response.json()
    digest = hashlib.sha256(b"erin-42").hexdigest()
    assert body["customer_hash"] == digest
    assert "erin" not in json.dumps({k: v for k, v in body.items() if k != "customer_hash"})
    erased = body["erased"]
    assert erased["profile"] == 1 and erased["aliases"] == 1 and erased["merges"] == 1
    assert erased["journey_runs"] == 1 and erased["runs_exited"] == 1
    assert erased["segment_memberships"] == 1 and erased["experiment_assignments"] == 1
    assert erased["metrics"] == 1 and erased["deliveries_blanked"] == 1
    assert erased["events"] == before["events"] and erased["outbox"] >= 1
    assert body["temporal"]["runs_ended"] == 1

    assert await rows_of(api, erin) == dict.fromkeys(PERSONAL, 0)
    # The bounced address stays suppressed, with no owner: it protects the address.
    kept_suppressions = await api.pool.fetch("SELECT customer_id, address FROM suppressions")
    assert [(r["customer_id"], r["address"]) for r in kept_suppressions] == [
        (None, "erin@shop.example")
    ]
    assert await rows_of(api, ["other-1", "other-device"]) == other_before
    # The ledger row stays for caps and dedupe; what it said about the person is gone.
    kept = await api.pool.fetch(
        "SELECT recipient, subject, status FROM deliveries WHERE customer_id = 'erin-42'"
    )
    assert [(r["recipient"], r["subject"], r["status"]) for r in kept] == [(None, None, "sent")]
    other = await api.pool.fetchval(
        "SELECT recipient FROM deliveries WHERE customer_id = 'other-1'"
    )
    assert other == "other-1@shop.example"

    # Her run is gone from Temporal; the other customer's still waits.
    with pytest.raises(RPCError) as gone:
        await live.client.get_workflow_handle(f"journey/{jid}/erin-42").describe()
    assert gone.value.status == RPCStatusCode.NOT_FOUND
    assert (await live.view("other-1"))["journeys"]["running"][0]["step"] == "await-order"
    # Her exit is counted, so the stage's "in it now" stays right.
    assert await funnel(api, jid) == {"entered": 2, "current": 1, "exited": 1}

    record = await api.pool.fetchrow("SELECT customer_hash, erased FROM erasures")
    assert record is not None and record["customer_hash"] == digest
    assert "erin" not in json.dumps(record["erased"])
    assert record["erased"]["temporal"]["runs_ended"] == 1

    again = await api.http.delete("/api/customers/erin-42", headers=api.admin)
    assert again.status_code == 404
    assert "an erasure of this id was recorded" in again.json()["message"]
    assert (await api.http.get("/api/customers/erin-42", headers=api.admin)).status_code == 404
    assert (
        await api.http.delete("/api/customers/erin-device", headers=api.admin)
    ).status_code == 404
    assert await api.count("erasures") == 1

    # The same id later is a new customer, who may enter the `once` journey again.
    await send(api, track("erin-42", "Checkout Started"))
    view = await live.waiting("erin-42", "await-order")
    assert view["aliases"] == [] and view["merges"] == [] and view["segments"] == []
    assert view["traits"] == {}
    assert view["metrics"] is None or view["metrics"]["order_count"] == 0
    [run] = view["journeys"]["running"]
    assert run["workflow_id"] == f"journey/{jid}/erin-42"
    assert await funnel(api, jid) == {"entered": 3, "current": 2, "exited": 1}


async def test_the_histories_of_finished_runs_are_deleted_too(live: Live) -> None:
    api = live.api
    welcome = journey_id("welcome")
    await api.deploy(
        f"""
id: {welcome}
name: Welcome
entry: {{event: Signed Up}}
stages:
  - name: hello
    touchpoints:
      - send: {{id: hello, subject: "Welcome", body: "Hello"}}
"""
    )
    await send(
        api,
        message("identify", userId="fin-1", traits={"email": "fin@shop.example"}),
        track("fin-1", "Signed Up"),
    )

    async def done() -> bool:
        finished = (await live.view("fin-1"))["journeys"]["finished"]
        return [r["status"] for r in finished] == ["completed"]

    await eventually(done)
    response = await api.http.delete("/api/customers/fin-1", headers=api.admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["erased"]["journey_runs"] == 1 and body["erased"]["runs_exited"] == 0
    assert body["temporal"]["runs_ended"] == 0
    assert body["temporal"]["histories_deleted"] == 1
    assert body["temporal"]["histories_not_deleted"] == 0


async def test_without_temporal_a_customer_with_runs_is_not_erased(api: Api) -> None:
    await api.deploy(checkout("no-temporal"))
    await send(
        api,
        message("identify", userId="kept-1", traits={"email": "kept@shop.example"}),
        track("kept-1", "Checkout Started"),
    )
    before = await rows_of(api, ["kept-1"])
    response = await api.http.delete("/api/customers/kept-1", headers=api.admin)
    assert response.status_code == 503
    assert "nothing was erased" in response.json()["message"]
    assert await rows_of(api, ["kept-1"]) == before
    assert await api.count("erasures") == 0

    # A customer who never entered a journey needs no Temporal.
    await send(api, message("identify", userId="quiet-1", traits={"plan": "pro"}))
    await deploy_segment(api, PRO_SEGMENT)
    await join(api, "pro", "quiet-1")
    response = await api.http.delete("/api/customers/quiet-1", headers=api.admin)
    assert response.status_code == 200, response.text
    assert response.json()["temporal"] == {}
    assert await rows_of(api, ["quiet-1"]) == dict.fromkeys(PERSONAL, 0)


async def test_erasing_an_unknown_customer_is_a_404_that_changes_nothing(api: Api) -> None:
    response = await api.http.delete("/api/customers/never-seen", headers=api.admin)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "no customer 'never-seen'"}
    assert await api.count("erasures") == 0
