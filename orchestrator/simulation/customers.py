"""Synthetic customers: profiles drawn from the population, and what each does after a trigger.

Every random choice comes from a generator seeded with (seed, customer, purpose), so that a
customer's profile and reactions are the same in every run with the same seed, whatever order
the workflows happen to run in.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from journeyman.orchestrator.customers.settings import CustomerDataSettings
from journeyman.workflows import expressions
from journeyman.workflows.inputs import JourneyEvent

from .distributions import Distribution, Scalar
from .metrics import ConditionMetrics
from .scenario import Reaction, Scenario

# Synthetic addresses must never reach anyone: .invalid is reserved for that (RFC 2606).
EMAIL_DOMAIN = "simulation.invalid"


def rng_for(seed: int, customer_id: str, purpose: str) -> random.Random:
    # Seeding from text hashes it with SHA-512: stable across processes, unlike hash().
    return random.Random(f"{seed}/{customer_id}/{purpose}")


def customer_ids(count: int) -> list[str]:
    width = len(str(max(count, 1)))
    return [f"customer-{n:0{width}d}" for n in range(1, count + 1)]


def nest(values: Iterable[tuple[str, Scalar]]) -> dict[str, Any]:
    """Build nested mappings from dotted paths: ``cart.total`` becomes ``{"cart": {"total"}}``."""
    root: dict[str, Any] = {}
    for path, value in values:
        *parents, last = path.split(".")
        node = root
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return root


def draw(values: Sequence[tuple[str, Distribution]], rng: random.Random) -> dict[str, Any]:
    return nest((path, distribution.draw(rng)) for path, distribution in values)


def profile(scenario: Scenario, seed: int, customer_id: str) -> dict[str, Any]:
    """The customer's traits: an address of their own, then the population's draws."""
    traits: dict[str, Any] = {"email": f"{customer_id}@{EMAIL_DOMAIN}"}
    traits.update(draw(scenario.population, rng_for(seed, customer_id, "profile")))
    return traits


def entry_event(
    scenario: Scenario, seed: int, customer_id: str, *, name: str, at: datetime
) -> JourneyEvent:
    properties = draw(scenario.entry_properties, rng_for(seed, customer_id, "entry"))
    return JourneyEvent(
        message_id=f"simulation/{customer_id}/entry",
        name=name,
        properties=properties,
        occurred_at=at,
    )


def arrival_offset(scenario: Scenario, seed: int, customer_id: str) -> int:
    """Seconds after the start at which the customer enters."""
    if scenario.arrival_seconds == 0:
        return 0
    return rng_for(seed, customer_id, "arrival").randint(0, scenario.arrival_seconds)


@dataclass(frozen=True)
class Emission:
    """An event a customer will send: ``delay_seconds`` after the trigger."""

    message_id: str
    event: str
    properties: dict[str, Any]
    delay_seconds: int


@dataclass
class Customer:
    """One synthetic customer's state: traits (updates change them) and events so far;
    ``settings`` say how their metrics are read from those events."""

    id: str
    workflow_id: str
    traits: dict[str, Any]
    entry: JourneyEvent
    history: dict[str, list[expressions.StoredEvent]] = field(default_factory=dict)
    settings: CustomerDataSettings = field(default_factory=CustomerDataSettings)
    _remembered: set[str] = field(default_factory=set)

    def remember(
        self, message_id: str, name: str, properties: dict[str, Any], at: datetime
    ) -> None:
        """Add an event to the history once (a retried activity decides the same again)."""
        if message_id in self._remembered:
            return
        self._remembered.add(message_id)
        self.history.setdefault(name, []).append(expressions.StoredEvent(name, properties, at))

    def context(self, now: datetime) -> expressions.Context:
        """What a condition sees at ``now``: events scheduled for later have not happened, and
        the metrics are those the events so far give."""
        history = {
            name: [event for event in events if event.occurred_at <= now]
            for name, events in self.history.items()
        }
        everything = [event for events in history.values() for event in events]
        return expressions.Context(
            traits=self.traits,
            event=self.entry.properties,
            history=history,
            now=now,
            metrics=ConditionMetrics(self.id, everything, settings=self.settings, now=now),
        )

    def recall(self, past: Sequence[Reaction], *, seed: int, now: datetime) -> None:
        """Add the events from before entry that the scenario's ``history`` draws."""
        context = self.context(now)
        rng = rng_for(seed, self.id, "history")
        for index, event in enumerate(past):
            roll, ago, properties = rng.random(), event.after.draw(rng), draw(event.properties, rng)
            if roll >= event.probability:
                continue
            if event.when is not None and not expressions.evaluate(event.when, context):
                continue
            at = now - timedelta(seconds=ago)
            self.remember(f"simulation/{self.id}/history/{index}", event.event, properties, at)

    def react(
        self, reactions: Sequence[Reaction], *, seed: int, trigger: str, now: datetime
    ) -> list[Emission]:
        """The events this customer sends after ``trigger`` (unique per run: stage and
        transition number, or step and visit), each decided on its own."""
        if not reactions:
            return []
        rng = rng_for(seed, self.id, trigger)
        context = self.context(now)
        found = []
        for index, reaction in enumerate(reactions):
            # Draw everything for every reaction, so that one reaction's condition never
            # shifts the numbers the next one gets.
            roll = rng.random()
            delay = reaction.after.draw(rng)
            properties = draw(reaction.properties, rng)
            if roll >= reaction.probability:
                continue
            if reaction.when is not None and not expressions.evaluate(reaction.when, context):
                continue
            message_id = f"simulation/{self.id}/{trigger}/{index}"
            found.append(Emission(message_id, reaction.event, properties, delay))
            self.remember(message_id, reaction.event, properties, now + timedelta(seconds=delay))
        return found
