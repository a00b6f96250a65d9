"""Test traffic for the lifecycle journey, and what it must produce, computed independently."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# journeys/lifecycle.yaml: the goal that leaves each stage, and the email sent on entering it
# (steps behind a delay or a timeout never come due while a test runs).
STAGES = ["awareness", "consideration", "purchase", "service", "loyalty"]
GOALS = [
    "Product Viewed",
    "Checkout Started",
    "Order Completed",
    "Survey Answered",
    "Order Completed",
]
ENTRY_EMAIL = {
    "awareness": "Welcome, {name}!",
    "consideration": "How we compare, in our customers' words",
    "purchase": None,
    "service": "How is your order, {name}?",
    "loyalty": "Your member points are waiting",
}


@dataclass(frozen=True)
class Person:
    user_id: str
    name: str
    depth: int  # goals reached: 0 stays in awareness, 5 completes the journey

    @property
    def email(self) -> str:
        return f"{self.user_id}@example.com"


def people(count: int, seed: int, prefix: str) -> list[Person]:
    rng = random.Random(seed)
    names = ["Ada", "Bo", "Chen", "Dee", "Eun", "Femi"]
    # Every depth at least once, the rest at random.
    depths = [i % 6 for i in range(6)] + [rng.randint(0, 5) for _ in range(count - 6)]
    return [Person(f"{prefix}-{i:03d}", rng.choice(names), d) for i, d in enumerate(depths)]


def expected_emails(person: Person, *, after_round: int) -> list[str]:
    """Subjects a person must have received once rounds 0..after_round were processed."""
    reached = min(person.depth, after_round) + 1  # stages entered
    subjects = [ENTRY_EMAIL[s] for s in STAGES[:reached]]
    return [s.format(name=person.name) for s in subjects if s is not None]


def expected_funnel(group: list[Person], *, after_round: int) -> dict[str, dict[str, int]]:
    reached = Counter(min(p.depth, after_round) for p in group)
    out = {}
    for i, stage in enumerate(STAGES):
        entered = sum(n for depth, n in reached.items() if depth >= i)
        converted = sum(n for depth, n in reached.items() if depth >= i + 1)
        out[stage] = {"entered": entered, "converted": converted, "current": entered - converted}
    return out


def track(person: Person, event: str) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": person.user_id,
        "event": event,
        "messageId": str(uuid.uuid4()),
    }


def identify(person: Person) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": person.user_id,
        "traits": {"email": person.email, "first_name": person.name},
        "messageId": str(uuid.uuid4()),
    }


def round_messages(group: list[Person], k: int) -> list[dict[str, Any]]:
    """Round 0 identifies and signs everyone up; round k sends goal k to those who reach it."""
    if k == 0:
        return [m for p in group for m in (identify(p), track(p, "Signed Up"))]
    return [track(p, GOALS[k - 1]) for p in group if p.depth >= k]


def wait_until(check: Callable[[], bool], what: Callable[[], str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting: {what()}")
