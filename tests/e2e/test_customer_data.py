"""Customer data over HTTP on real processes: one identity across login, and segments whose
entering and leaving drive a journey at once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from .conftest import WRITE_KEY, Stack
from .traffic import wait_until

pytestmark = pytest.mark.e2e

GOLD = """
id: gold
name: Gold tier
when: profile.tier == "gold"
"""

# Entered the moment a customer starts matching `gold`; left the moment they stop.
GOLD_WELCOME = """
id: gold_welcome
name: Gold welcome
entry: {segment: gold}
exit: [{leaves_segment: gold}]
stages:
  - name: loyalty
    touchpoints:
      - send: {id: welcome, subject: "Welcome to gold", body: "Hi"}
      - wait: 30d
      - send: {id: still, subject: "Still gold", body: "Hi"}
"""


def _post(stack: Stack, path: str, body: dict[str, Any]) -> None:
    response = httpx.post(f"{stack.api_url}{path}", json=body, auth=(WRITE_KEY, ""), timeout=30)
    assert response.status_code == 200, response.text


def _identify(stack: Stack, **fields: Any) -> None:
    _post(stack, "/v1/identify", {"messageId": str(uuid.uuid4()), **fields})


def _fetch(stack: Stack, sql: str, *args: object) -> list[asyncpg.Record]:
    async def query() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(stack.env["JOURNEYMAN_DATABASE_URL"])
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(query())


def _subjects(stack: Stack, address: str) -> list[str]:
    return [str(m["Subject"]) for m in stack.sink.messages if address in str(m["To"])]


def test_behaviour_before_login_belongs_to_the_customer_after_it(stack: Stack) -> None:
    stack.start("api")
    anonymous = f"anon-{uuid.uuid4().hex[:8]}"
    _post(stack, "/v1/page", {"anonymousId": anonymous, "name": "Night Renewal Serum"})
    _post(
        stack,
        "/v1/track",
        {"anonymousId": anonymous, "event": "Product Viewed", "properties": {"sku": "serum"}},
    )
    _identify(stack, userId="ana", anonymousId=anonymous, traits={"email": "ana@example.com"})

    response = httpx.get(f"{stack.api_url}/api/customers/{anonymous}", headers=stack.admin)
    assert response.status_code == 200, response.text
    customer = response.json()
    assert customer["customer_id"] == "ana"
    assert anonymous in customer["aliases"]
    owners = _fetch(stack, "SELECT DISTINCT customer_id FROM events")
    assert [row["customer_id"] for row in owners] == ["ana"]


def test_entering_and_leaving_a_segment_drive_a_journey_at_once(stack: Stack) -> None:
    stack.start("api")
    stack.start("worker")
    response = httpx.post(
        f"{stack.api_url}/api/segments", content=GOLD, headers=stack.admin, timeout=30
    )
    assert response.status_code == 201, response.text
    response = httpx.post(
        f"{stack.api_url}/api/journeys", content=GOLD_WELCOME, headers=stack.admin, timeout=30
    )
    assert response.status_code == 201, response.text
    # Deploying the segment started the sweep that fills it; then ingest keeps it live.
    wait_until(
        lambda: bool(
            _fetch(
                stack,
                "SELECT 1 FROM segments WHERE filled_version = version AND segment_id = 'gold'",
            )
        ),
        lambda: "the gold segment was never filled",
    )

    _identify(stack, userId="gil", traits={"email": "gil@example.com", "tier": "silver"})
    _identify(stack, userId="gil", traits={"tier": "gold"})
    wait_until(
        lambda: _subjects(stack, "gil@") == ["Welcome to gold"],
        lambda: f"welcome not sent: {_subjects(stack, 'gil@')}",
        timeout=30,
    )
    _identify(stack, userId="gil", traits={"tier": "silver"})
    wait_until(
        lambda: stack.funnel("gold_welcome")["loyalty"]["exited"] == 1,
        lambda: f"the run did not leave: {stack.funnel('gold_welcome')}",
        timeout=30,
    )
    members = _fetch(stack, "SELECT customer_id FROM segment_memberships")
    assert members == []
    changes = _fetch(
        stack,
        "SELECT event FROM events WHERE customer_id = 'gil' AND event LIKE 'Segment %' ORDER BY id",
    )
    assert [row["event"] for row in changes] == ["Segment Entered", "Segment Exited"]
    assert _subjects(stack, "gil@") == ["Welcome to gold"]
