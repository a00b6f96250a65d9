"""The customer API: one customer's view, and who is in a segment or a journey, page by page.

Runs go through the real path: ingest, the outbox, the dispatcher, the journey workflow on the
Temporal dev server with a worker, and the SMTP sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from journeyman.channels import SmtpProvider, SmtpSink
from journeyman.orchestrator.dispatcher import Dispatcher
from journeyman.orchestrator.embedded import TemporalDevServer
from journeyman.orchestrator.storage import record_transition
from journeyman.workflows.activities import JourneyActivities
from journeyman.workflows.worker import build_worker

from .conftest import WRITE_KEY, Api

AUTH = (WRITE_KEY, "")

CHECKOUT = """
id: {jid}
name: Checkout
entry: {{event: Checkout Started{extra}}}
stages:
  - name: cart
    touchpoints:
      - send: {{id: cart-reminder, subject: "Your cart is waiting", body: "Hi"}}
      - id: await-order
        wait_for: {{event: Order Completed, where: {{total: {{gt: 0}}}}, timeout: 2d}}
  - name: after
    touchpoints:
      - id: settle
        wait: 30d
"""

WELCOME = """
id: {jid}
name: Welcome
entry: {{event: Checkout Started}}
stages:
  - name: hello
    touchpoints:
      - send: {{id: hello, subject: "Welcome", body: "Hello"}}
"""

PRO_SEGMENT = """
id: pro
name: Pro plan
kind: persona
when: profile.plan == "pro"
"""


def journey_id(prefix: str) -> str:
    # The Temporal dev server lives for the session: workflow ids must not meet across tests.
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def checkout(jid: str, extra: str = "") -> str:
    return CHECKOUT.format(jid=jid, extra=extra)


def message(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "messageId": str(uuid.uuid4()), **fields}


def track(user: str, event: str, **props: Any) -> dict[str, Any]:
    return message("track", userId=user, event=event, properties=props)


async def send(api: Api, *messages: dict[str, Any]) -> None:
    response = await api.http.post("/v1/batch", json={"batch": list(messages)}, auth=AUTH)
    assert response.status_code == 200, response.text


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 20.0) -> None:
    for _ in range(int(seconds / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not reached in time")


@dataclass
class Live:
    """The API with Temporal: a dispatcher and a worker running the real journey workflow."""

    api: Api
    client: Client
    sink: SmtpSink

    async def view(self, customer_id: str) -> dict[str, Any]:
        response = await self.api.http.get(f"/api/customers/{customer_id}", headers=self.api.admin)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def waiting(self, customer_id: str, step: str) -> dict[str, Any]:
        """The customer's view once one of their runs reports waiting at ``step``."""
        seen: dict[str, Any] = {}

        async def there() -> bool:
            seen.update(await self.view(customer_id))
            return any(run["step"] == step for run in seen["journeys"]["running"])

        await eventually(there)
        return seen


@pytest.fixture
async def live(api: Api, temporal_dev_server: TemporalDevServer) -> AsyncIterator[Live]:
    client = await Client.connect(
        temporal_dev_server.address, data_converter=pydantic_data_converter
    )
    api.services.temporal = client
    sink = SmtpSink()
    port = sink.start()
    activities = JourneyActivities(
        api.pool,
        email=SmtpProvider("127.0.0.1", port, local_hostname="localhost"),
        from_address="journeys@shop.example",
    )
    queue = f"customers-{uuid.uuid4().hex[:8]}"
    dispatcher = asyncio.create_task(
        Dispatcher(api.services.database_url, client, task_queue=queue).run()
    )
    try:
        async with build_worker(client, task_queue=queue, activities=activities):
            yield Live(api, client, sink)
    finally:
        dispatcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dispatcher
        sink.stop()


async def deploy_segment(api: Api, source: str = PRO_SEGMENT) -> None:
    response = await api.http.post("/api/segments", content=source, headers=api.admin)
    assert response.status_code == 201, response.text


async def join(api: Api, segment_id: str, *customers: str) -> None:
    """Record membership as live evaluation does (idempotent, so it holds either way)."""
    await api.pool.execute(
        "INSERT INTO segment_memberships (segment_id, customer_id)"
        " SELECT $1, c FROM unnest($2::text[]) AS c ON CONFLICT DO NOTHING",
        segment_id,
        list(customers),
    )


async def leave(api: Api, segment_id: str, customer: str) -> None:
    await api.pool.execute(
        "DELETE FROM segment_memberships WHERE segment_id = $1 AND customer_id = $2",
        segment_id,
        customer,
    )


# --- one customer ------------------------------------------------------------------------


async def test_the_view_shows_where_a_running_journey_waits_and_what_for(live: Live) -> None:
    api = live.api
    jid, welcome = journey_id("checkout"), journey_id("welcome")
    await api.deploy(checkout(jid))
    await api.deploy(WELCOME.format(jid=welcome))
    await deploy_segment(api)
    await send(
        api,
        message("track", anonymousId="anon-7", event="Product Viewed", properties={"sku": "x"}),
        message(
            "identify",
            userId="cust-7",
            anonymousId="anon-7",
            traits={"email": "cust7@shop.example", "plan": "pro", "consent": {"email": True}},
        ),
        track("cust-7", "Checkout Started"),
    )
    await join(api, "pro", "cust-7")
    await api.pool.execute(
        "INSERT INTO customer_metrics (customer_id, order_count, revenue_total)"
        " VALUES ('cust-7', 3, 90) ON CONFLICT (customer_id)"
        " DO UPDATE SET order_count = 3, revenue_total = 90"
    )

    view = await live.waiting("cust-7", "await-order")
    assert view["customer_id"] == "cust-7" and view["resolved_from_alias"] is False
    assert view["aliases"] == ["anon-7"]
    assert view["traits"]["plan"] == "pro" and view["consent"] == {"email": True}
    assert view["metrics"]["order_count"] == 3
    assert [(s["id"], s["name"], s["kind"]) for s in view["segments"]] == [
        ("pro", "Pro plan", "persona")
    ]
    assert [(m["from_id"], m["into_id"], m["reason"]) for m in view["merges"]] == [
        ("anon-7", "cust-7", "identify")
    ]
    assert view["journeys"]["temporal"] == "ok"
    # The welcome journey may still be sending: look at the checkout run.
    [run] = [r for r in view["journeys"]["running"] if r["journey_id"] == jid]
    assert run["journey_name"] == "Checkout"
    assert run["workflow_id"] == f"journey/{jid}/cust-7"
    assert (run["stage"], run["step"], run["position_source"]) == (
        "cart",
        "await-order",
        "temporal",
    )
    assert run["waiting_for"] == {
        "kind": "wait_for",
        "event": "Order Completed",
        "timeout_seconds": 2 * 86400,
        "where": [{"path": "total", "op": "gt", "value": 0}],
    }
    versions = await api.pool.fetchval(
        "SELECT version FROM journey_runs WHERE journey_id = $1", jid
    )
    assert run["version"] == versions

    async def welcome_finished() -> bool:
        finished = (await live.view("cust-7"))["journeys"]["finished"]
        return [(r["journey_id"], r["status"]) for r in finished] == [(welcome, "completed")]

    await eventually(welcome_finished)
    # A closed execution never speaks for a run Postgres still counts as running (as when
    # an id comes back after an erasure): the recorded stage stands in, and the view says so.
    await api.pool.execute(
        "UPDATE journey_runs SET status = 'active' WHERE journey_id = $1", welcome
    )
    journeys = (await live.view("cust-7"))["journeys"]
    [stale] = [run for run in journeys["running"] if run["journey_id"] == welcome]
    assert (stale["position_source"], stale["step"]) == ("journey_runs", None)
    assert journeys["temporal"].startswith("partial: 1 of 2 running runs gave no position")
    await api.pool.execute(
        "UPDATE journey_runs SET status = 'completed' WHERE journey_id = $1", welcome
    )

    # The order arrives: the run moves on to the next stage's timed wait.
    await send(api, track("cust-7", "Order Completed", total=30))
    view = await live.waiting("cust-7", "settle")
    [run] = view["journeys"]["running"]
    assert run["stage"] == "after"
    assert run["waiting_for"] == {"kind": "wait", "seconds": 30 * 86400}


async def test_an_alias_resolves_to_its_customer(live: Live) -> None:
    api = live.api
    await send(
        api,
        message("track", anonymousId="device-1", event="Page Viewed", properties={}),
        message("identify", userId="cust-8", anonymousId="device-1", traits={"plan": "free"}),
    )
    response = await api.http.get("/api/customers/device-1", headers=api.admin)
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["customer_id"] == "cust-8" and view["requested_id"] == "device-1"
    assert view["resolved_from_alias"] is True and view["aliases"] == ["device-1"]
    assert view["traits"] == {"plan": "free"}
    assert view["metrics"] is None or view["metrics"]["customer_id"] == "cust-8"
    assert view["journeys"] == {"running": [], "finished": [], "temporal": "ok"}

    missing = await api.http.get("/api/customers/nobody", headers=api.admin)
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "message": "no customer 'nobody'"}


async def test_ids_with_slashes_and_spaces_are_reachable(api: Api) -> None:
    await send(api, message("identify", userId="shop/42 a", traits={"plan": "pro"}))
    response = await api.http.get("/api/customers/shop%2F42%20a", headers=api.admin)
    assert response.status_code == 200, response.text
    assert response.json()["customer_id"] == "shop/42 a"


async def test_without_temporal_the_view_falls_back_to_the_recorded_stage(live: Live) -> None:
    api = live.api
    jid = journey_id("checkout")
    await api.deploy(checkout(jid))
    await send(api, track("cust-9", "Checkout Started"))
    await live.waiting("cust-9", "await-order")

    api.services.temporal, api.services.temporal_address = None, "127.0.0.1:1"
    view = await live.view("cust-9")
    assert view["journeys"]["temporal"].startswith("unavailable")
    [run] = view["journeys"]["running"]
    assert (run["stage"], run["step"], run["waiting_for"]) == ("cart", None, None)
    assert run["position_source"] == "journey_runs" and run["status"] == "active"

    # Not configured at all: said so, same fallback.
    api.services.temporal_address = None
    view = await live.view("cust-9")
    assert view["journeys"]["temporal"] == "not configured"
    assert view["journeys"]["running"][0]["position_source"] == "journey_runs"


# --- who is where ------------------------------------------------------------------------


async def pages(api: Api, url: str, limit: int, **filters: str) -> list[list[dict[str, Any]]]:
    """Every page of a listing, following ``next`` until it is null."""
    found: list[list[dict[str, Any]]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit, **filters}
        if after is not None:
            params["after"] = after
        response = await api.http.get(url, params=params, headers=api.admin)
        assert response.status_code == 200, response.text
        body = response.json()
        found.append(body["customers"])
        after = body["next"]
        if after is None:
            return found
        assert len(found) < 100, "paging does not end"


async def test_segment_members_page_by_customer_id(api: Api) -> None:
    await deploy_segment(api)
    members = [f"m{n:02d}" for n in range(25)]
    await send(api, *(message("identify", userId=m, traits={"plan": "pro"}) for m in members))
    await send(api, message("identify", userId="free-1", traits={"plan": "free"}))
    await join(api, "pro", *members)

    got = await pages(api, "/api/segments/pro/customers", limit=10)
    assert [len(page) for page in got] == [10, 10, 5]
    assert [row["customer_id"] for page in got for row in page] == members

    # The list changes under the cursor: someone joins before it (not on later pages), one
    # leaves after it, one joins after it; no one else repeats or goes missing.
    first = (await api.http.get("/api/segments/pro/customers?limit=10", headers=api.admin)).json()
    await send(
        api,
        *(message("identify", userId=m, traits={"plan": "pro"}) for m in ("a-new", "z-new")),
        message("identify", userId="m15", traits={"plan": "free"}),
    )
    await join(api, "pro", "a-new", "z-new")
    await leave(api, "pro", "m15")
    rest = (
        await api.http.get(
            "/api/segments/pro/customers",
            params={"limit": 100, "after": first["next"]},
            headers=api.admin,
        )
    ).json()
    assert [r["customer_id"] for r in rest["customers"]] == [
        *(m for m in members[10:] if m != "m15"),
        "z-new",
    ]
    assert rest["next"] is None

    exact = (await api.http.get("/api/segments/pro/customers?limit=26", headers=api.admin)).json()
    assert exact["next"] is None and len(exact["customers"]) == 26
    missing = await api.http.get("/api/segments/nope/customers", headers=api.admin)
    assert missing.status_code == 404 and "nope" in missing.json()["message"]


async def test_journey_customers_page_by_stage_with_several_runs_each(api: Api) -> None:
    jid = journey_id("carts")
    await api.deploy(checkout(jid, extra=", reentry: {concurrent: cart_id}"))
    customers = [f"c{n:02d}" for n in range(12)]
    await send(api, *(track(c, "Checkout Started", cart_id="A") for c in customers))
    await send(api, track("c05", "Checkout Started", cart_id="B"))  # a second run for c05
    runs = await api.pool.fetch(
        "SELECT workflow_id, version, customer_id FROM journey_runs WHERE journey_id = $1"
        " ORDER BY customer_id, workflow_id",
        jid,
    )
    assert len(runs) == 13
    # The runs record their stages as a worker would: seven in cart, then six move on.
    async with api.pool.acquire() as conn:
        for n, run in enumerate(runs):
            stages = ["cart"] if n % 2 == 0 else ["cart", "after"]
            previous: str | None = None
            for seq, stage in enumerate(stages, start=1):
                await record_transition(
                    conn,
                    run_key=f"{run['workflow_id']}@test",
                    seq=seq,
                    journey_id=jid,
                    version=run["version"],
                    customer_id=run["customer_id"],
                    workflow_id=run["workflow_id"],
                    from_stage=previous,
                    to_stage=stage,
                    outcome="entered" if previous is None else "converted",
                )
                previous = stage
    expected = [(r["customer_id"], r["workflow_id"]) for r in runs]

    url = f"/api/journeys/{jid}/customers"
    got = await pages(api, url, limit=1)
    assert len(got) == 13
    assert [(row["customer_id"], row["workflow_id"]) for [row] in got] == expected
    c05 = [row["workflow_id"] for [row] in got if row["customer_id"] == "c05"]
    assert c05 == [f"journey/{jid}/c05", f"journey/{jid}/c05/2"]

    in_cart = await pages(api, url, limit=3, stage="cart")
    assert [len(page) for page in in_cart] == [3, 3, 1]
    assert [row["customer_id"] for page in in_cart for row in page] == [
        r[0] for n, r in enumerate(expected) if n % 2 == 0
    ]
    assert {row["stage"] for page in in_cart for row in page} == {"cart"}
    after = await pages(api, url, limit=100, stage="after")
    assert [len(page) for page in after] == [6]

    # A finished run is nobody's current place.
    await api.pool.execute(
        "UPDATE journey_runs SET status = 'completed' WHERE workflow_id = $1", expected[0][1]
    )
    assert len((await pages(api, url, limit=1000))[0]) == 12

    unknown = await api.http.get(f"{url}?stage=checkout", headers=api.admin)
    assert unknown.status_code == 400
    assert unknown.json()["message"] == (
        f"unknown stage 'checkout'; the stages of journey '{jid}' are: cart, after"
    )
    missing = await api.http.get("/api/journeys/nope/customers", headers=api.admin)
    assert missing.status_code == 404


async def test_journey_customers_at_a_step_come_from_temporal_visibility(live: Live) -> None:
    api = live.api
    jid = journey_id("checkout")
    await api.deploy(checkout(jid))
    await send(api, *(track(c, "Checkout Started") for c in ("s1", "s2", "s3", "s4")))
    for customer in ("s1", "s2", "s3", "s4"):
        await live.waiting(customer, "await-order")
    await send(api, track("s2", "Order Completed", total=5))  # s2 moves on to "settle"
    await live.waiting("s2", "settle")
    url = f"/api/journeys/{jid}/customers"

    async def listed(step: str) -> list[str]:
        got = await pages(api, url, limit=2, step=step)
        return [row["customer_id"] for page in got for row in page]

    async def settled() -> bool:  # visibility trails the runs a little
        return await listed("settle") == ["s2"] and await listed("await-order") == [
            "s1",
            "s3",
            "s4",
        ]

    await eventually(settled)
    both = (await api.http.get(f"{url}?stage=after&step=await-order", headers=api.admin)).json()
    assert both["customers"] == []

    send_step = await api.http.get(f"{url}?step=cart-reminder", headers=api.admin)
    assert send_step.status_code == 400
    assert "is a send step" in send_step.json()["message"]
    unknown = await api.http.get(f"{url}?step=nope", headers=api.admin)
    assert unknown.status_code == 400
    assert unknown.json()["message"].endswith("are: await-order, settle")

    api.services.temporal, api.services.temporal_address = None, None
    away = await api.http.get(f"{url}?step=settle", headers=api.admin)
    assert away.status_code == 503 and "not configured" in away.json()["message"]


# --- bad requests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit must be between 1 and 1000, got 0"),
        ("limit=5000", "limit must be between 1 and 1000, got 5000"),
        ("after=not-a-cursor", "after is not a cursor from this list"),
        # A cursor of the other listing (one key where two are needed).
        ("after=WyJtMDEiXQ", "after is not a cursor from this list"),
    ],
)
async def test_bad_paging_is_a_400_that_says_why(api: Api, query: str, message: str) -> None:
    await api.deploy(checkout("paged"))
    await deploy_segment(api)
    for url in ("/api/journeys/paged/customers", "/api/segments/pro/customers"):
        if url.startswith("/api/segments") and query.startswith("after=Wy"):
            continue  # a one-key cursor is right for segments
        response = await api.http.get(f"{url}?{query}", headers=api.admin)
        assert response.status_code == 400, (url, response.text)
        assert response.json()["error"] == "invalid_request"
        assert response.json()["message"].startswith(message)


async def test_a_limit_that_is_not_a_number_is_a_400(api: Api) -> None:
    await deploy_segment(api)
    response = await api.http.get("/api/segments/pro/customers?limit=ten", headers=api.admin)
    assert response.status_code == 400
    assert response.json()["fields"][0]["field"] == "query.limit"


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/customers/cust-1"),
        ("DELETE", "/api/customers/cust-1"),
        ("GET", "/api/segments/pro/customers"),
        ("GET", "/api/journeys/paged/customers"),
    ],
)
async def test_every_customer_route_needs_the_admin_token(api: Api, method: str, url: str) -> None:
    await send(api, message("identify", userId="cust-1", traits={"plan": "pro"}))
    response = await api.http.request(method, url)
    assert response.status_code == 401
    wrong = await api.http.request(method, url, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert await api.count("profiles") == 1
