"""A journey with an experiment, a holdout and satisfaction answers, for the page's sections.

Written through the engine's own functions (stage transitions, experiment assignments and the
decision, the send ledger) and the ingest API (metric events and survey answers), as the
engine and customers would write them.

``offers`` (welcome, consideration, purchase; 20 % held out; goal: an order within 30 days):

- treated runs ``t0`` to ``t39`` and held-out runs ``h0`` to ``h9`` move through the stages
  (``PATHS``), entering over four weeks, leaving for timeouts, an exit event and an exit step;
- the experiment ``offer-test``: Newcombe's example (a), ``plain`` 48 of 80 converted and
  ``discount`` 56 of 70, with 4 and 3 entrants still pending; ``discount`` decided the winner;
- satisfaction answers from customers still in ``welcome`` and ``consideration``, some after
  a message (``hello``, ``compare``), one out of range; none in ``purchase`` (a gap).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from journeyman.orchestrator.storage import record_transition
from journeyman.orchestrator.storage.experiments import VariantResult, assign, decide

from .seed import Path, message, workflow_id

JOURNEY_ID = "offers"
JOURNEY = """
id: offers
name: Offers
entry: {event: Signed Up, holdout: 20%}
goal: {event: Order Completed, within: 30d}
stages:
  - name: welcome
    goal: {event: Product Viewed}
    touchpoints:
      - send: {id: hello, subject: "Hello", body: "Hi"}
      - id: offer-test
        experiment:
          control: plain
          variants:
            - {name: plain, weight: 1, then: [{send: {id: plain-mail, subject: P, body: Hi}}]}
            - {name: discount, weight: 1, then: [{send: {id: off-mail, subject: D, body: Hi}}]}
          metric: {event: Order Completed, within: 7d}
          decide: {after: 3d, min_per_variant: 50}
  - name: consideration
    goal: {event: Checkout Started}
    touchpoints:
      - send: {id: compare, subject: "Compare", body: "Hi"}
  - name: purchase
    touchpoints:
      - send: {id: thanks, subject: "Thanks", body: "Hi"}
"""
STAGES = ["welcome", "consideration", "purchase"]
# The same journey with another first email: a second version to compare with.
SECOND = JOURNEY.replace('subject: "Hello"', 'subject: "Welcome aboard"')

ENTER: Path = [(None, "welcome", "entered")]
ON: Path = [("welcome", "consideration", "converted")]


def _paths() -> dict[str, Path]:
    """Customer -> the transitions of their run; ``h`` customers are held out."""
    found: dict[str, Path] = {}
    for n in range(40):
        if n < 10:
            path = ENTER + ON + [("consideration", None, "goal")]
        elif n < 18:
            path = ENTER + ON + [("consideration", None, "exited")]
        elif n < 20:
            path = ENTER + ON
        elif n < 31:
            path = [*ENTER, ("welcome", None, "exited")]
        else:
            path = ENTER
        found[f"t{n}"] = path
    for n in range(10):
        if n < 2:
            path = [*ENTER, ("welcome", None, "goal")]
        elif n < 8:
            path = [*ENTER, ("welcome", None, "exited")]
        else:
            path = ENTER
        found[f"h{n}"] = path
    return found


def _reason(customer: str, outcome: str) -> tuple[str | None, str | None]:
    """Why a run leaves: t10-t17 at an exit step, t28-t30 on an exit event, else a timeout."""
    if outcome not in ("exited", "moved_on"):
        return None, None
    n = int(customer[1:])
    if customer.startswith("t") and 10 <= n < 18:
        return "exit_step", "not interested"
    if customer.startswith("t") and 28 <= n < 31:
        return "exit_rule", "Unsubscribed"
    return "timeout", None


# (customer, step) messages sent before the answers; customers without one answer "cold".
MESSAGES = [("t31", "hello"), ("t32", "hello"), ("t33", "hello"), ("t34", "hello"),
            ("t35", "hello"), ("t18", "compare"), ("t19", "compare")]  # fmt: skip
ANSWERS: list[tuple[str, str, dict[str, Any]]] = [
    ("t31", "Survey Answered", {"score": 9}),
    ("t32", "Chat Closed", {"csat": 4}),
    ("t33", "NPS Answered", {"nps": 10}),
    ("t34", "NPS Answered", {"nps": 3}),
    ("t35", "Survey Answered", {"score": 6}),
    ("t36", "Chat Closed", {"csat": 2}),  # no message yet: the stage only
    ("t37", "Chat Closed", {"csat": 9}),  # out of range: rejected
    ("t18", "Chat Closed", {"csat": 5}),
    ("t19", "NPS Answered", {"nps": 8}),
]


def _track(user: str, event: str, properties: dict[str, Any], at: datetime | None) -> Any:
    body: dict[str, Any] = {
        "type": "track",
        "userId": user,
        "event": event,
        "properties": properties,
        "messageId": str(uuid.uuid4()),
    }
    if at is not None:
        body["timestamp"] = at.isoformat()
    return body


async def ingest(http: httpx.AsyncClient, write_key: str, batch: list[dict[str, Any]]) -> None:
    response = await http.post("/v1/batch", json={"batch": batch}, auth=(write_key, ""))
    assert response.status_code == 200, response.text
    assert not response.json().get("rejected"), response.text


async def run(
    pool: asyncpg.Pool,
    customer: str,
    path: Path,
    *,
    version: str,
    entered_at: datetime,
    holdout: bool = False,
) -> None:
    """Record a run's transitions as the journey workflow's activity does, with reasons."""
    wf = workflow_id(customer, JOURNEY_ID)
    async with pool.acquire() as conn:
        for seq, (from_stage, to_stage, outcome) in enumerate(path, start=1):
            reason, detail = _reason(customer, outcome)
            recorded = await record_transition(
                conn,
                run_key=f"{wf}@run-1",
                seq=seq,
                journey_id=JOURNEY_ID,
                version=version,
                customer_id=customer,
                workflow_id=wf,
                from_stage=from_stage,
                to_stage=to_stage,
                outcome=outcome,
                holdout=holdout,
                entered_at=entered_at,
                reason=reason,
                reason_detail=detail,
            )
            assert recorded


async def runs(pool: asyncpg.Pool, *, version: str, now: datetime) -> None:
    """Every run's transitions, each run entering in one of the last four weeks."""
    for index, (customer, path) in enumerate(_paths().items()):
        await run(
            pool,
            customer,
            path,
            version=version,
            entered_at=now - timedelta(weeks=index % 4),
            holdout=customer.startswith("h"),
        )


async def experiment(
    pool: asyncpg.Pool, http: httpx.AsyncClient, write_key: str, *, now: datetime
) -> None:
    """offer-test as Newcombe's example (a), its metric events ingested, and its decision."""
    start = now - timedelta(days=10)
    orders: list[dict[str, Any]] = []
    async with pool.acquire() as conn:
        for variant, entrants, converted in (("plain", 80, 48), ("discount", 70, 56)):
            for n in range(entrants):
                customer = f"{variant}-{n}"
                await assign(
                    conn,
                    journey_id=JOURNEY_ID,
                    step_id="offer-test",
                    customer_id=customer,
                    variant=variant,
                    at=start,
                )
                if n < converted:
                    at = start + timedelta(days=2)
                    orders.append(_track(customer, "Order Completed", {"total": 30}, at))
            # Entered yesterday: their 7-day window is still open, so they are pending.
            for n in range(4 if variant == "plain" else 3):
                await assign(
                    conn,
                    journey_id=JOURNEY_ID,
                    step_id="offer-test",
                    customer_id=f"{variant}-new-{n}",
                    variant=variant,
                    at=now - timedelta(days=1),
                )
        await decide(
            conn,
            journey_id=JOURNEY_ID,
            step_id="offer-test",
            winner_name="discount",
            found=[VariantResult("plain", 80, 48), VariantResult("discount", 70, 56)],
        )
    await ingest(http, write_key, orders)


async def satisfaction(
    pool: asyncpg.Pool, http: httpx.AsyncClient, write_key: str, *, version: str
) -> None:
    """Messages to some of the customers still in the journey, then everyone's answers."""
    for customer, step in MESSAGES:
        await message(
            pool, customer, step, "email", "delivered", version=version, journey_id=JOURNEY_ID
        )
    await ingest(http, write_key, [_track(c, e, p, None) for c, e, p in ANSWERS])


async def seed_sections(
    pool: asyncpg.Pool, http: httpx.AsyncClient, write_key: str, *, version: str
) -> None:
    """Runs, the experiment and the answers of ``offers`` in ``version``."""
    now = datetime.now(UTC)
    await runs(pool, version=version, now=now)
    await experiment(pool, http, write_key, now=now)
    await satisfaction(pool, http, write_key, version=version)


async def second_version(pool: asyncpg.Pool, *, version: str) -> None:
    """Twenty runs in the second version: 12 convert out of welcome, 4 time out, 4 stay."""
    now = datetime.now(UTC)
    for n in range(20):
        path: Path = ENTER
        if n < 12:
            path = ENTER + ON
        elif n < 16:
            path = [*ENTER, ("welcome", None, "exited")]
        await run(pool, f"u{n}", path, version=version, entered_at=now)
