"""Synthetic web traffic for the demo: customers who sign up, browse, buy, answer, come back.

Traffic is replayed in rounds, one lifecycle step per round, so the funnel visibly moves while
customers sit in their stages; every customer's events keep their order.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

FIRST_NAMES = ["Ana", "Ben", "Chen", "Dana", "Eli", "Fatima", "Goro", "Hana", "Ivan", "Jia", "Kofi"]
CITIES = ["Taipei", "Seoul", "Shanghai", "Lisbon", "Austin", "Nairobi", "Berlin"]

# The lifecycle journey's goals, in order, and the chance a customer takes each next step.
STEPS: list[tuple[str, float]] = [
    ("Signed Up", 1.0),
    ("Product Viewed", 0.8),
    ("Checkout Started", 0.6),
    ("Order Completed", 0.7),
    ("Survey Answered", 0.6),
    ("Order Completed", 0.5),
]


@dataclass
class Customer:
    user_id: str
    traits: dict[str, Any]
    steps: int  # how many of STEPS this customer takes
    messages: list[dict[str, Any]] = field(default_factory=list)


def customers(count: int, *, seed: int = 7) -> list[Customer]:
    """Deterministic customers: the same seed gives the same people and behaviour."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        name = rng.choice(FIRST_NAMES)
        steps = 1
        while steps < len(STEPS) and rng.random() < STEPS[steps][1]:
            steps += 1
        out.append(
            Customer(
                user_id=f"demo-{seed}-{i:05d}",
                traits={
                    "email": f"{name.lower()}.{i}@example.com",
                    "first_name": name,
                    "city": rng.choice(CITIES),
                    "age": rng.randint(18, 75),
                },
                steps=steps,
            )
        )
    return out


def funnel_moves(people: list[Customer], *, after_round: int) -> int:
    """Entries plus conversions the funnel must show once rounds 0..after_round are processed."""
    stages = len(STEPS) - 1  # the last step completes the journey; it enters no stage
    entries = sum(min(c.steps, after_round + 1, stages) for c in people)
    return entries + sum(min(c.steps - 1, after_round) for c in people)


def _track(user_id: str, event: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user_id,
        "event": event,
        "properties": properties,
        "messageId": str(uuid.uuid4()),
    }


def rounds(people: list[Customer]) -> list[list[dict[str, Any]]]:
    """Round 0 identifies everyone and signs them up; round k sends each customer's k-th goal."""
    first: list[dict[str, Any]] = []
    for c in people:
        first.append(
            {
                "type": "identify",
                "userId": c.user_id,
                "traits": c.traits,
                "messageId": str(uuid.uuid4()),
            }
        )
        first.append(_track(c.user_id, "Signed Up", {"source": "web"}))
    out = [first]
    for k in range(1, len(STEPS)):
        name = STEPS[k][0]
        props: dict[str, Any] = {"repeat": k == len(STEPS) - 1}
        if name == "Order Completed":
            props["revenue"] = 49.0
        if name == "Survey Answered":
            props["score"] = 9
        out.append([_track(c.user_id, name, props) for c in people if c.steps > k])
    return out
