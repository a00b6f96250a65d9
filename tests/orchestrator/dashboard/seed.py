"""A small journey with known numbers, written through the engine's own storage functions.

Seven customers move through ``spring`` (awareness, consideration, purchase):

- awareness: 7 entered, 4 converted, 1 exited, 1 moved on, 1 still in (``c5``);
- consideration: 5 entered, 1 converted, 3 exited, 1 still in (``c6``): the busiest drop-off;
- purchase: 1 entered, who reached the journey's goal.

``c1``'s conversion is attributed to ``comparison`` (its last message), the only key station.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from journeyman.orchestrator.storage import Outcome, claim_send, finish_send, record_transition
from journeyman.orchestrator.storage.delivery_states import State, apply_state

JOURNEY_ID = "spring"
JOURNEY = """
id: spring
name: Spring campaign
entry: {event: Signed Up}
goal: {event: Order Completed, within: 30d}
stages:
  - name: awareness
    goal: {event: Product Viewed}
    touchpoints:
      - send: {id: welcome, subject: "Welcome", body: "Hello"}
      - wait: 1d
      - send: {id: tips, channel: sms, body: "Tips for you"}
  - name: consideration
    goal: {event: Checkout Started}
    touchpoints:
      - send: {id: comparison, subject: "Compare", body: "How we compare"}
      - wait_for:
          event: Checkout Started
          timeout: 3d
          on_timeout:
            - id: hesitating
              branch:
                cases:
                  - when: profile.vip == true
                    then:
                      - send: {id: vip-offer, subject: "For you", body: "An offer"}
                otherwise:
                  - send: {id: sample-kit, subject: "Samples", body: "Try them"}
  - name: purchase
    touchpoints:
      - send: {id: thanks, subject: "Thank you", body: "Thanks"}
"""
STAGES = ["awareness", "consideration", "purchase"]

# Per customer: the stage transitions of their run, in order.
Path = list[tuple[str | None, str | None, Outcome]]
PATHS: dict[str, Path] = {
    "c1": [
        (None, "awareness", "entered"),
        ("awareness", "consideration", "converted"),
        ("consideration", "purchase", "converted"),
        ("purchase", None, "goal"),
    ],
    "c2": [
        (None, "awareness", "entered"),
        ("awareness", "consideration", "converted"),
        ("consideration", None, "exited"),
    ],
    "c3": [(None, "awareness", "entered"), ("awareness", None, "exited")],
    "c4": [
        (None, "awareness", "entered"),
        ("awareness", "consideration", "converted"),
        ("consideration", None, "exited"),
    ],
    "c5": [(None, "awareness", "entered")],
    "c6": [(None, "awareness", "entered"), ("awareness", "consideration", "moved_on")],
    "c7": [
        (None, "awareness", "entered"),
        ("awareness", "consideration", "converted"),
        ("consideration", None, "exited"),
    ],
}
# Messages, written before the transitions: (customer, step, channel, final state).
MESSAGES: list[tuple[str, str, str, State]] = [
    ("c1", "welcome", "email", "clicked"),
    ("c2", "welcome", "email", "opened"),
    ("c3", "welcome", "email", "sent"),
    ("c4", "welcome", "email", "sent"),
    ("c4", "tips", "sms", "sent"),
    ("c5", "welcome", "email", "sent"),
    ("c6", "welcome", "email", "failed"),
    ("c7", "welcome", "email", "delivered"),
    ("c1", "comparison", "email", "opened"),
    ("c2", "comparison", "email", "sent"),
]


@dataclass(frozen=True)
class Expected:
    """What the seeded journey's pages must show."""

    funnel: dict[str, tuple[int, int, int]]  # stage -> (entered, in now, converted)
    dropoff: str
    key_stations: frozenset[str]
    entered: int
    current: int
    converted: int


EXPECTED = Expected(
    funnel={"awareness": (7, 1, 4), "consideration": (5, 1, 1), "purchase": (1, 0, 0)},
    dropoff="consideration",
    key_stations=frozenset({"comparison"}),
    entered=7,
    current=2,
    converted=1,
)


def workflow_id(customer: str, journey_id: str = JOURNEY_ID) -> str:
    return f"journey/{journey_id}/{customer}"


async def transitions(
    pool: asyncpg.Pool,
    customer: str,
    steps: Path,
    *,
    version: str,
    journey_id: str = JOURNEY_ID,
    first_seq: int = 1,
) -> None:
    """Record a run's transitions as the journey workflow's activity does."""
    wf = workflow_id(customer, journey_id)
    async with pool.acquire() as conn:
        for seq, (from_stage, to_stage, outcome) in enumerate(steps, start=first_seq):
            recorded = await record_transition(
                conn,
                run_key=f"{wf}@run-1",
                seq=seq,
                journey_id=journey_id,
                version=version,
                customer_id=customer,
                workflow_id=wf,
                from_stage=from_stage,
                to_stage=to_stage,
                outcome=outcome,
            )
            assert recorded


async def message(
    pool: asyncpg.Pool,
    customer: str,
    step: str,
    channel: str,
    state: State,
    *,
    version: str,
    journey_id: str = JOURNEY_ID,
) -> None:
    """Claim and finish a send in the ledger, then move it on as a provider's report would."""
    send_key = f"{workflow_id(customer, journey_id)}@run-1/{step}/0"
    async with pool.acquire() as conn:
        claimed = await claim_send(
            conn,
            send_key=send_key,
            journey_id=journey_id,
            version=version,
            customer_id=customer,
            step_id=step,
            channel=channel,
        )
        assert claimed.claimed
        await finish_send(conn, send_key=send_key, status="failed" if state == "failed" else "sent")
        if state not in ("sent", "failed"):
            await apply_state(conn, send_key=send_key, state=state, occurred_at=datetime.now(UTC))


async def seed(pool: asyncpg.Pool, *, version: str) -> None:
    """Every message, then every run's transitions (so conversions follow their messages)."""
    for customer, step, channel, state in MESSAGES:
        await message(pool, customer, step, channel, state, version=version)
    for customer, steps in PATHS.items():
        await transitions(pool, customer, steps, version=version)
