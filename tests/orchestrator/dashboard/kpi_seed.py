"""A launch journey whose touchpoints declare goals and KPIs, two of them observed, with known
KPI counts: messages and stage transitions written through the engine's storage functions,
the KPI events sent through the ingest API (page views and tracked events).

- awareness observes the ``website`` (traffic, counted in visits: every page view) and the
  ``launch-event`` (awareness, counted in attendees); its send step ``invite`` declares a goal
  and no KPI;
- purchase sends ``offer`` (conversion, counted in orders: ``Order Completed`` with a total).

Customers ``k1``-``k3`` got the invite and moved on to purchase, where they got the offer;
``k4`` and ``k5`` got the invite and are still in awareness. Then:

- page views: ``k4`` two, ``k5`` one (in awareness: 3 visits, 2 customers), ``k1`` one (in
  purchase by then: not a visit of the awareness stage's website);
- ``k5`` attended the launch event (1 attendee);
- orders: ``k1`` two with a total, ``k3`` one (3 orders, 2 customers); ``k2`` one with a total
  of 0 and ``k4`` one without the offer, which the KPI does not count.
"""

from __future__ import annotations

from typing import Any, Final

import asyncpg
import httpx

from .seed import Path, message, transitions

JOURNEY_ID: Final = "launch"
JOURNEY: Final = """
id: launch
name: Night-repair launch
entry: {event: Signed Up}
goal: {event: Order Completed, within: 30d}
stages:
  - name: awareness
    goal: {event: Product Viewed}
    observe:
      - id: website
        goal: traffic
        kpi: {name: visits, page: true}
      - id: launch-event
        goal: awareness
        kpi: {name: attendees, event: Event Attended, where: {event_id: night-repair}}
    touchpoints:
      - send: {id: invite, subject: "Meet the cream", body: "Hello", goal: awareness}
  - name: purchase
    touchpoints:
      - send:
          id: offer
          subject: "Ten percent off"
          body: "This week only"
          goal: conversion
          kpi: {name: orders, event: Order Completed, where: {total: {gt: 0}}}
"""
STAGES: Final = ["awareness", "purchase"]
OBSERVED: Final = ["website", "launch-event"]

# What the map and the table must show: touchpoint -> (KPI count, KPI customers).
EXPECTED: Final[dict[str, tuple[int, int]]] = {
    "website": (3, 2),
    "launch-event": (1, 1),
    "offer": (3, 2),
}

MOVED_ON: Final = ["k1", "k2", "k3"]
STAYED: Final = ["k4", "k5"]


async def ingest(http: httpx.AsyncClient, write_key: str, kind: str, body: dict[str, Any]) -> None:
    """One Segment call through the API; it answers 200 once the event is stored."""
    response = await http.post(f"/v1/{kind}", json=body, auth=(write_key, ""))
    assert response.status_code == 200, response.text


async def page_view(http: httpx.AsyncClient, write_key: str, customer: str) -> None:
    properties = {"path": "/night-repair", "title": "Night Repair Cream"}
    body = {"userId": customer, "name": "Night Repair Cream", "properties": properties}
    await ingest(http, write_key, "page", body)


async def track(
    http: httpx.AsyncClient, write_key: str, customer: str, event: str, **properties: Any
) -> None:
    body = {"userId": customer, "event": event, "properties": properties}
    await ingest(http, write_key, "track", body)


async def seed_kpis(
    pool: asyncpg.Pool, http: httpx.AsyncClient, write_key: str, *, version: str
) -> None:
    """Messages, then transitions, then the KPI events (so each follows what it measures)."""
    sends = [(c, "invite") for c in MOVED_ON + STAYED] + [(c, "offer") for c in MOVED_ON]
    for customer, step in sends:
        await message(pool, customer, step, "email", "sent", version=version, journey_id=JOURNEY_ID)
    moved_on: Path = [(None, "awareness", "entered"), ("awareness", "purchase", "converted")]
    stayed: Path = [(None, "awareness", "entered")]
    for customer in MOVED_ON + STAYED:
        path = moved_on if customer in MOVED_ON else stayed
        await transitions(pool, customer, path, version=version, journey_id=JOURNEY_ID)
    for customer in ("k4", "k4", "k5", "k1"):
        await page_view(http, write_key, customer)
    await track(http, write_key, "k5", "Event Attended", event_id="night-repair")
    await track(http, write_key, "k1", "Order Completed", total=30)
    await track(http, write_key, "k1", "Order Completed", total=12)
    await track(http, write_key, "k3", "Order Completed", total=15)
    await track(http, write_key, "k2", "Order Completed", total=0)
    await track(http, write_key, "k4", "Order Completed", total=20)
