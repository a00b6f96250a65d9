"""A synthetic customer's behavioural metrics, derived from their simulated events.

Production keeps ``customer_metrics`` current as ingest stores each event
(``orchestrator/customers/metrics.py``); a condition reading ``metrics.NAME`` sees that row.
Here the same numbers are folded from the customer's in-memory history, event by event, with
the production pieces: ``observe`` reads each event through the customer data settings
(``customers.yaml``: which event is an order, where its revenue is), and ``frequency_class``
and ``recency_class`` class the result.

Two differences, both small against a simulation's resolution:

- the recency class is computed at the time the condition is read, where production's moves
  from active to inactive or lost only when the scheduled sweep runs (hourly by default);
- simulated events carry no ``context``, so the channel and device metrics stay empty.

Events the engine records itself (segment entered or exited, recency changes, run ended) are
not customer activity and change nothing, as in production.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from journeyman.orchestrator.customers.classes import frequency_class, recency_class
from journeyman.orchestrator.customers.events import ENGINE_SOURCE, SYSTEM_EVENTS
from journeyman.orchestrator.customers.metrics import (
    CustomerMetrics,
    condition_values,
    observe,
)
from journeyman.orchestrator.customers.settings import CustomerDataSettings
from journeyman.orchestrator.ingest import IncomingEvent
from journeyman.workflows import expressions


def customer_metrics(
    customer_id: str,
    events: Iterable[expressions.StoredEvent],
    *,
    settings: CustomerDataSettings,
    now: datetime,
) -> CustomerMetrics | None:
    """The metrics row ingest would hold for these events at ``now``; None without activity
    (a customer production has never seen)."""
    last_satisfaction: float | None = None
    last_satisfaction_at: datetime | None = None
    order_count, revenue = 0, Decimal(0)
    first_order: datetime | None = None
    last_order: datetime | None = None
    last_seen: datetime | None = None
    categories: dict[str, int | float] = {}
    products: dict[str, int | float] = {}
    for event in sorted(events, key=lambda e: e.occurred_at):
        if event.occurred_at > now:
            continue  # scheduled for later: it has not happened yet
        seen = observe(_incoming(customer_id, event), settings=settings, now=event.occurred_at)
        if seen is None:
            continue
        last_seen = seen.at if last_seen is None else max(last_seen, seen.at)
        if seen.order:
            order_count += 1
            revenue += seen.revenue
            first_order = seen.at if first_order is None else min(first_order, seen.at)
            last_order = seen.at if last_order is None else max(last_order, seen.at)
            _add(categories, seen.categories)
            _add(products, seen.products)
        if seen.satisfaction is not None and (
            last_satisfaction_at is None or seen.at >= last_satisfaction_at
        ):
            last_satisfaction, last_satisfaction_at = seen.satisfaction, seen.at
    if last_seen is None:
        return None
    return CustomerMetrics(
        customer_id=customer_id,
        order_count=order_count,
        revenue_total=revenue,
        first_order_at=first_order,
        last_order_at=last_order,
        categories=categories,
        products=products,
        last_seen_at=last_seen,
        last_satisfaction=last_satisfaction,
        last_satisfaction_at=last_satisfaction_at,
        # Ingest classes the frequency as each event arrives: as of the latest activity.
        frequency_class=frequency_class(
            order_count=order_count,
            revenue_total=revenue,
            first_order_at=first_order,
            last_order_at=last_order,
            now=last_seen,
            settings=settings,
        ),
        recency_class=recency_class(last_seen, now, settings),
    )


class ConditionMetrics(Mapping[str, Any]):
    """What ``metrics.NAME`` reads for one customer at one time, folded on first use: most
    conditions never read a metric, and a context is built for every branch and reaction."""

    def __init__(
        self,
        customer_id: str,
        events: Iterable[expressions.StoredEvent],
        *,
        settings: CustomerDataSettings,
        now: datetime,
    ) -> None:
        self._customer_id, self._events = customer_id, events
        self._settings, self._now = settings, now
        self._values: dict[str, Any] | None = None

    def _loaded(self) -> dict[str, Any]:
        if self._values is None:
            found = customer_metrics(
                self._customer_id, self._events, settings=self._settings, now=self._now
            )
            self._values = condition_values(found)
        return self._values

    def __getitem__(self, name: str) -> Any:
        return self._loaded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


def _incoming(customer_id: str, event: expressions.StoredEvent) -> IncomingEvent:
    # The engine marks the events it records with its own source; ``observe`` skips those.
    context = {"source": ENGINE_SOURCE} if event.name in SYSTEM_EVENTS else {}
    return IncomingEvent(
        message_id="simulation",
        type="track",
        customer_id=customer_id,
        event=event.name,
        properties=dict(event.properties),
        traits={},
        context=context,
        occurred_at=event.occurred_at,
    )


def _add(total: dict[str, int | float], more: Mapping[str, int | float]) -> None:
    for key, units in more.items():
        total[key] = total.get(key, 0) + units
