"""The drill's customers, what each one does, and what that must lead to, worked out from the
script alone (never from what the engine reports).

Each customer signs up, may ask a question while the awareness stage waits for one, and
reaches ``depth`` goals (0: stays in awareness, 3: completes the journey). A customer's next
event is sent only once the message it answers has been handled (the ledger shows it), as a
person reacts to an email: so what each customer must have received and where they must end
up is fixed by the script, however the faults delay things.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

JOURNEY = "fault-drill"
STAGES = ["awareness", "consideration", "purchase", "loyalty"]
# Each stage's goal (the event that moves a customer on); loyalty has none.
GOALS = ["Product Viewed", "Checkout Started", "Order Completed"]
# tests/faults/drill.yaml: each send step's subject, to read the SMTP sink by.
SUBJECTS = {
    "welcome": "Welcome, {name}",
    "nudge": "Any questions?",
    "answer": "An adviser's answer",
    "comparison": "How we compare",
    "cart": "Your cart",
    "thanks": "Thank you",
}
NAMES = ["Ada", "Bo", "Chen", "Dee", "Eun", "Femi"]


@dataclass(frozen=True)
class Customer:
    user_id: str
    name: str
    depth: int  # goals reached
    asks: bool  # asks a question in awareness
    start: float  # seconds after the drill starts that they sign up
    noise: int  # page views along the way, which no journey reacts to

    @property
    def email(self) -> str:
        return f"{self.user_id}@example.com"


@dataclass(frozen=True)
class Gate:
    """Send the next messages once ``step``'s send is claimed or, with ``final``, handled."""

    step: str
    final: bool


@dataclass(frozen=True)
class Move:
    gate: Gate | None
    messages: list[dict[str, Any]]


def customers(count: int, rng: random.Random, *, prefix: str, spread: float) -> list[Customer]:
    """``count`` customers; every depth, with and without a question, at least once."""
    out = []
    for i in range(count):
        depth = i % 4 if i < 8 else rng.randint(0, 3)
        asks = i % 8 >= 4 if i < 8 else rng.random() < 0.4
        out.append(
            Customer(
                user_id=f"{prefix}-{i:03d}",
                name=rng.choice(NAMES),
                depth=depth,
                asks=asks,
                start=rng.uniform(0, spread),
                noise=rng.randint(0, 3),
            )
        )
    return out


# --- what must come of it -------------------------------------------------------------------


def expected_sends(customer: Customer) -> list[str]:
    """The send steps due to ``customer`` by the end of the drill, in order."""
    due = ["welcome", "nudge"]
    if customer.asks:
        due.append("answer")
    if customer.depth >= 1:
        due.append("comparison")
    if customer.depth >= 2:
        due.append("cart")
    if customer.depth >= 3:
        due.append("thanks")
    return due


def expected_subject(customer: Customer, step: str) -> str:
    return SUBJECTS[step].format(name=customer.name)


def expected_place(customer: Customer) -> tuple[str, str]:
    """(run status, stage) at the end: loyalty has no goal, so reaching it completes the run."""
    if customer.depth == len(GOALS):
        return "completed", STAGES[-1]
    return "active", STAGES[customer.depth]


def expected_funnel(group: list[Customer]) -> dict[str, dict[str, int]]:
    """Per stage: customers who entered it, converted out of it (its goal), and are in it."""
    out = {}
    for i, stage in enumerate(STAGES):
        entered = sum(1 for c in group if c.depth >= i)
        has_goal = i < len(GOALS)
        converted = sum(1 for c in group if c.depth >= i + 1) if has_goal else 0
        current = sum(1 for c in group if c.depth == i) if has_goal else 0
        out[stage] = {"entered": entered, "converted": converted, "current": current}
    return out


# --- what each customer does ----------------------------------------------------------------


def _message(customer: Customer, kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "userId": customer.user_id, "messageId": str(uuid.uuid4()), **fields}


def track(customer: Customer, event: str) -> dict[str, Any]:
    return _message(customer, "track", event=event)


def page_view(customer: Customer, rng: random.Random) -> dict[str, Any]:
    path = rng.choice(["/", "/serums", "/night-cream", "/faq"])
    return _message(customer, "page", name=path, properties={"path": path})


def moves(customer: Customer, rng: random.Random) -> list[Move]:
    """The customer's messages, each group behind the gate it waits for."""
    traits = {"email": customer.email, "first_name": customer.name}
    # Identify and sign-up go in one request, in this order: the welcome needs the address.
    out = [
        Move(None, [_message(customer, "identify", traits=traits), track(customer, "Signed Up")])
    ]
    # Answering the nudge: a reply counts from the moment the nudge's send began.
    if customer.asks:
        out.append(Move(Gate("nudge", final=False), [track(customer, "Question Asked")]))
    awareness_done = Gate("answer" if customer.asks else "nudge", final=True)
    gates = [awareness_done, Gate("comparison", final=True), Gate("cart", final=True)]
    for goal, gate in zip(GOALS[: customer.depth], gates, strict=False):
        out.append(Move(gate, [track(customer, goal)]))
    # Browsing that no journey reacts to, riding along with the customer's other requests.
    for _ in range(customer.noise):
        rng.choice(out).messages.append(page_view(customer, rng))
    return out
