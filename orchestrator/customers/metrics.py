"""Behavioural metrics per customer, kept current as events arrive, and the recency sweep.

``apply_event`` runs inside the ingest transaction for each stored event: two statements (the
row locked, then one upsert), so ingest stays cheap. ``load`` reads a customer's metrics with
what is derived from them, ``merge`` joins two customers' metrics when their identities merge,
and ``sweep_recency`` turns the passing of time into ``Became Inactive`` / ``Became Lost``
events.

Events the engine records itself (``context.source`` is ``journeyman``) are not customer
activity and change nothing here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

import asyncpg
from pydantic import BaseModel, ConfigDict, computed_field

from .classes import (
    FrequencyClass,
    RecencyClass,
    became_at,
    frequency_class,
    recency_class,
)
from .events import BECAME_ACTIVE, BECAME_INACTIVE, BECAME_LOST, ENGINE_SOURCE
from .settings import CustomerDataSettings

if TYPE_CHECKING:
    # Only for annotations: ingest imports this module, so importing it back here at load
    # time would be circular (the sweep imports it when it runs).
    from journeyman.orchestrator.ingest import IncomingEvent, TriggerIndex

TOP_N: Final = 5
# Longer category, product, channel or device names are not counted (they are not names).
MAX_KEY_CHARS: Final = 200
# Products read from one order; a longer list is cut (a real cart is far shorter).
MAX_PRODUCTS_PER_ORDER: Final = 1000
# Amounts, quantities and scores beyond this are not numbers anyone meant.
MAX_NUMBER: Final = Decimal("1e15")

_EVENT_NAMES: Final[dict[RecencyClass, str]] = {
    "active": BECAME_ACTIVE,
    "inactive": BECAME_INACTIVE,
    "lost": BECAME_LOST,
}


class RecencyChange(BaseModel):
    """A customer's recency class moved from ``from_class`` to ``to_class``."""

    model_config = ConfigDict(frozen=True)

    customer_id: str
    from_class: RecencyClass
    to_class: RecencyClass
    last_seen_at: datetime  # the latest activity when the class changed

    @property
    def event_name(self) -> str:
        return _EVENT_NAMES[self.to_class]

    @property
    def message_id(self) -> str:
        """Deterministic: the same change found twice (a rerun, a retry) is stored once."""
        return recency_message_id(self.customer_id, self.to_class, self.last_seen_at)

    def event(self, *, occurred_at: datetime) -> IncomingEvent:
        """The engine event that records this change, for ``ingest``."""
        from journeyman.orchestrator.ingest import IncomingEvent

        return IncomingEvent(
            message_id=self.message_id,
            type="track",
            customer_id=self.customer_id,
            event=self.event_name,
            properties={
                "from": self.from_class,
                "to": self.to_class,
                "last_seen_at": self.last_seen_at.astimezone(UTC).isoformat(),
            },
            traits={},
            context={"source": ENGINE_SOURCE},
            occurred_at=occurred_at,
        )


def recency_message_id(customer_id: str, to: RecencyClass, last_seen_at: datetime) -> str:
    """The message id of the event recording that ``customer_id`` became ``to``.

    A customer becomes a class at most once per latest-activity time, so the id names one
    change and a crashed sweep (or ingest) that runs again stores it once.
    """
    return f"recency:{customer_id}:{to}:{last_seen_at.astimezone(UTC).isoformat()}"


class CustomerMetrics(BaseModel):
    """One customer's stored metrics, with what conditions and reports derive from them."""

    model_config = ConfigDict(frozen=True)

    customer_id: str
    order_count: int = 0
    revenue_total: Decimal = Decimal(0)
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    categories: dict[str, int | float] = {}  # category -> units bought
    products: dict[str, int | float] = {}  # product id -> units bought
    last_seen_at: datetime | None = None
    channels: dict[str, int | float] = {}  # channel -> events
    devices: dict[str, int | float] = {}  # device type -> events
    last_channel: str | None = None
    last_device: str | None = None
    last_satisfaction: float | None = None
    last_satisfaction_at: datetime | None = None
    frequency_class: FrequencyClass = "none"
    recency_class: RecencyClass = "active"
    updated_at: datetime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def average_order_value(self) -> Decimal | None:
        """Revenue per order (the average receipt); None before the first order."""
        if self.order_count <= 0:
            return None
        return self.revenue_total / self.order_count

    @computed_field  # type: ignore[prop-decorator]
    @property
    def top_categories(self) -> list[str]:
        """The most-bought categories by units, at most five (ties in name order)."""
        return _top(self.categories, TOP_N)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def top_products(self) -> list[str]:
        """The most-bought products by units, at most five (ties in id order)."""
        return _top(self.products, TOP_N)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def preferred_channel(self) -> str | None:
        """The channel of most of the customer's events."""
        return next(iter(_top(self.channels, 1)), None)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def preferred_device(self) -> str | None:
        """The device type of most of the customer's events."""
        return next(iter(_top(self.devices, 1)), None)

    def as_condition_values(self) -> dict[str, Any]:
        """What ``metrics.NAME`` reads in a condition: plain numbers, text and lists, times as
        ISO-8601 text in UTC (``days_since_*`` are counted from those when evaluated)."""
        average = self.average_order_value
        return {
            "frequency": self.frequency_class,
            "recency": self.recency_class,
            "order_count": self.order_count,
            "revenue_total": float(self.revenue_total),
            "average_order_value": None if average is None else float(average),
            "first_order_at": _iso(self.first_order_at),
            "last_order_at": _iso(self.last_order_at),
            "top_categories": self.top_categories,
            "top_products": self.top_products,
            "last_seen_at": _iso(self.last_seen_at),
            "preferred_channel": self.preferred_channel,
            "preferred_device": self.preferred_device,
            "last_channel": self.last_channel,
            "last_device": self.last_device,
            "last_satisfaction": self.last_satisfaction,
            "last_satisfaction_at": _iso(self.last_satisfaction_at),
        }


def condition_values(metrics: CustomerMetrics | None) -> dict[str, Any]:
    """``metrics.as_condition_values()``; for a customer never seen, no orders and no recency
    (``metrics.recency is null`` holds, ``metrics.frequency == "none"`` too)."""
    if metrics is None:
        values = CustomerMetrics(customer_id="").as_condition_values()
        values["recency"] = None
        return values
    return metrics.as_condition_values()


def _top(counts: Mapping[str, int | float], n: int) -> list[str]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [name for name, units in ranked[:n] if units > 0]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


# What one event adds to the metrics.


class Observation(BaseModel):
    """What one stored event contributes, read through the configured event mapping."""

    model_config = ConfigDict(frozen=True)

    at: datetime  # when it happened, never after ``now`` (client clocks run fast at times)
    channel: str | None = None
    device: str | None = None
    order: bool = False
    revenue: Decimal = Decimal(0)
    categories: dict[str, int | float] = {}
    products: dict[str, int | float] = {}
    satisfaction: float | None = None


def observe(
    event: IncomingEvent, *, settings: CustomerDataSettings, now: datetime
) -> Observation | None:
    """What ``event`` adds to its customer's metrics; None when it is not customer activity."""
    if event.context.get("source") == ENGINE_SOURCE:
        return None
    occurred = event.occurred_at
    at = min(occurred if occurred.tzinfo else occurred.replace(tzinfo=UTC), now)
    interaction = settings.interaction
    fields: dict[str, Any] = {
        "at": at,
        "channel": _name(_path(event.context, interaction.channel)),
        "device": _name(_path(event.context, interaction.device)),
    }
    if event.type == "track" and event.event == settings.orders.event:
        fields.update(_order(event.properties, settings))
    if event.type == "track" and event.event == settings.satisfaction.event:
        score = _number(event.properties.get(settings.satisfaction.score))
        fields["satisfaction"] = None if score is None else float(score)
    return Observation(**fields)


def _order(properties: Mapping[str, Any], settings: CustomerDataSettings) -> dict[str, Any]:
    mapping = settings.orders
    revenue = next(
        (
            found
            for name in mapping.revenue
            if (found := _number(properties.get(name))) is not None and found >= 0
        ),
        Decimal(0),
    )
    categories: dict[str, int | float] = {}
    products: dict[str, int | float] = {}
    items = properties.get(mapping.products)
    for item in items[:MAX_PRODUCTS_PER_ORDER] if isinstance(items, list) else ():
        if not isinstance(item, Mapping):
            continue
        quantity = _number(item.get(mapping.quantity))
        if quantity is None and item.get(mapping.quantity) is None:
            quantity = Decimal(1)  # a product listed without a quantity is one unit
        if quantity is None or quantity <= 0:
            continue
        units = int(quantity) if quantity == quantity.to_integral_value() else float(quantity)
        product = next(
            (n for key in mapping.product_id if (n := _name(item.get(key))) is not None), None
        )
        if product is not None:
            products[product] = products.get(product, 0) + units
        category = _name(item.get(mapping.category))
        if category is not None:
            categories[category] = categories.get(category, 0) + units
    return {"order": True, "revenue": revenue, "categories": categories, "products": products}


def _path(data: Mapping[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _name(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if 0 < len(text) <= MAX_KEY_CHARS else None


def _number(value: Any) -> Decimal | None:
    """A finite number, or text holding one ("49.90"); anything else is None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        # Through str, so 0.1 is 0.1 and not its binary approximation.
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):  # ValueError: an int too long to print
        return None
    return number if number.is_finite() and abs(number) < MAX_NUMBER else None


# Applying an event.


def _add_counts(column: str) -> str:
    """SQL adding the excluded row's jsonb counts to the stored ones, key by key."""
    return (
        f"CASE WHEN excluded.{column} = '{{}}'::jsonb THEN m.{column} ELSE ("
        f"SELECT coalesce(jsonb_object_agg(key, total), '{{}}'::jsonb) FROM ("
        f" SELECT key, sum(value::numeric) AS total FROM ("
        f"  SELECT key, value FROM jsonb_each_text(m.{column})"
        f"  UNION ALL SELECT key, value FROM jsonb_each_text(excluded.{column})"
        f" ) AS counted GROUP BY key) AS summed) END"
    )


def _latest(column: str, *, present: str, at: str, stored_at: str) -> str:
    """SQL taking the new ``column`` when ``present`` is set and the event is at least as
    recent as ``stored_at`` (a late event fills a gap but never overwrites a later value)."""
    return (
        f"CASE WHEN excluded.{present} IS NOT NULL"
        f" AND (m.{stored_at} IS NULL OR excluded.{at} >= m.{stored_at})"
        f" THEN excluded.{column} ELSE m.{column} END"
    )


_SEEN = {"at": "last_seen_at", "stored_at": "last_seen_at"}
_SATISFIED = {"present": "last_satisfaction", "at": "last_satisfaction_at"}
_LAST_CHANNEL = _latest("last_channel", present="last_channel", **_SEEN)
_LAST_DEVICE = _latest("last_device", present="last_device", **_SEEN)
_LAST_SATISFACTION = _latest("last_satisfaction", stored_at="last_satisfaction_at", **_SATISFIED)
_LAST_SATISFACTION_AT = _latest(
    "last_satisfaction_at", stored_at="last_satisfaction_at", **_SATISFIED
)

_UPSERT: Final = f"""
INSERT INTO customer_metrics AS m (
    customer_id, order_count, revenue_total, first_order_at, last_order_at, categories,
    products, last_seen_at, channels, devices, last_channel, last_device, last_satisfaction,
    last_satisfaction_at, frequency_class, recency_class, updated_at)
VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, now())
ON CONFLICT (customer_id) DO UPDATE SET
    order_count = m.order_count + excluded.order_count,
    revenue_total = m.revenue_total + excluded.revenue_total,
    first_order_at = least(m.first_order_at, excluded.first_order_at),
    last_order_at = greatest(m.last_order_at, excluded.last_order_at),
    categories = {_add_counts("categories")},
    products = {_add_counts("products")},
    last_seen_at = greatest(m.last_seen_at, excluded.last_seen_at),
    channels = {_add_counts("channels")},
    devices = {_add_counts("devices")},
    last_channel = {_LAST_CHANNEL},
    last_device = {_LAST_DEVICE},
    last_satisfaction = {_LAST_SATISFACTION},
    last_satisfaction_at = {_LAST_SATISFACTION_AT},
    frequency_class = excluded.frequency_class,
    recency_class = excluded.recency_class,
    updated_at = now()
"""


async def apply_event(
    conn: asyncpg.Connection,
    *,
    customer_id: str,
    event: IncomingEvent,
    settings: CustomerDataSettings,
    now: datetime | None = None,
) -> RecencyChange | None:
    """Add one stored event to ``customer_id``'s metrics, inside the caller's transaction.

    The latest activity only moves forward (a late event fills counts but does not move it
    back), the frequency class is recomputed, and the recency class becomes ``active`` when
    the event is recent enough to count as activity now. Returns the recency change when the
    class changed (the caller records ``change.event(...)``); None otherwise, also for a
    customer's first event and for the engine's own events, which change nothing.
    """
    now = now or datetime.now(UTC)
    seen = observe(event, settings=settings, now=now)
    if seen is None:
        return None
    # The row stays locked until the caller commits, so concurrent events for one customer
    # (and the sweep's class update) apply one after the other, each seeing the last.
    row = await conn.fetchrow(
        "SELECT order_count, revenue_total, first_order_at, last_order_at, last_seen_at,"
        " recency_class FROM customer_metrics WHERE customer_id = $1 FOR UPDATE",
        customer_id,
    )
    order_count = (row["order_count"] if row else 0) + int(seen.order)
    revenue_total = (row["revenue_total"] if row else Decimal(0)) + seen.revenue
    first_order = _least(row["first_order_at"] if row else None, seen.at if seen.order else None)
    last_order = _greatest(row["last_order_at"] if row else None, seen.at if seen.order else None)
    last_seen = _greatest(row["last_seen_at"] if row else None, seen.at)
    assert last_seen is not None
    frequency = frequency_class(
        order_count=order_count,
        revenue_total=revenue_total,
        first_order_at=first_order,
        last_order_at=last_order,
        now=now,
        settings=settings,
    )
    recent = recency_class(last_seen, now, settings)
    previous: RecencyClass | None = row["recency_class"] if row else None
    # A new customer starts in the class their activity puts them in; after that only
    # activity recent enough makes them active, and only the sweep ages them.
    recency: RecencyClass = recent if previous is None or recent == "active" else previous
    await conn.execute(
        _UPSERT,
        customer_id,
        int(seen.order),
        seen.revenue,
        seen.at if seen.order else None,
        seen.categories,
        seen.products,
        seen.at,
        {seen.channel: 1} if seen.channel else {},
        {seen.device: 1} if seen.device else {},
        seen.channel,
        seen.device,
        seen.satisfaction,
        seen.at if seen.satisfaction is not None else None,
        frequency,
        recency,
    )
    if previous is None or previous == recency:
        return None
    return RecencyChange(
        customer_id=customer_id, from_class=previous, to_class=recency, last_seen_at=last_seen
    )


def _least(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _greatest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


# Reading.


async def load(conn: asyncpg.Connection | asyncpg.Pool, customer_id: str) -> CustomerMetrics | None:
    """The customer's metrics, or None when no activity of theirs was ever stored."""
    row = await conn.fetchrow("SELECT * FROM customer_metrics WHERE customer_id = $1", customer_id)
    return None if row is None else _from_row(row)


def _from_row(row: Mapping[str, Any]) -> CustomerMetrics:
    data = dict(row)
    if data["last_satisfaction"] is not None:
        data["last_satisfaction"] = float(data["last_satisfaction"])
    return CustomerMetrics.model_validate(data)


# Identity merges.


async def merge(
    conn: asyncpg.Connection,
    *,
    from_id: str,
    into_id: str,
    settings: CustomerDataSettings,
    now: datetime | None = None,
) -> RecencyChange | None:
    """Add ``from_id``'s metrics into ``into_id``'s and delete ``from_id``'s row, inside the
    caller's transaction.

    Counts and totals add up, first times take the earlier and latest times the later, the
    last channel, device and satisfaction come from whichever side saw them last, and the
    recency class is that of the side seen last. Returns ``into_id``'s recency change, if any.
    """
    if from_id == into_id:
        return None
    now = now or datetime.now(UTC)
    rows = {
        row["customer_id"]: _from_row(row)
        for row in await conn.fetch(
            # Locked in id order, like ingest, so concurrent merges cannot deadlock.
            "SELECT * FROM customer_metrics WHERE customer_id = ANY($1::text[])"
            " ORDER BY customer_id FOR UPDATE",
            sorted({from_id, into_id}),
        )
    }
    source, target = rows.get(from_id), rows.get(into_id)
    if source is None:
        return None
    await conn.execute("DELETE FROM customer_metrics WHERE customer_id = $1", from_id)
    merged = _combine(source, target, into_id, settings=settings, now=now)
    await conn.execute(
        "INSERT INTO customer_metrics (customer_id, order_count, revenue_total, first_order_at,"
        " last_order_at, categories, products, last_seen_at, channels, devices, last_channel,"
        " last_device, last_satisfaction, last_satisfaction_at, frequency_class, recency_class,"
        " updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, now())"
        " ON CONFLICT (customer_id) DO UPDATE SET order_count = excluded.order_count,"
        " revenue_total = excluded.revenue_total, first_order_at = excluded.first_order_at,"
        " last_order_at = excluded.last_order_at, categories = excluded.categories,"
        " products = excluded.products, last_seen_at = excluded.last_seen_at,"
        " channels = excluded.channels, devices = excluded.devices,"
        " last_channel = excluded.last_channel, last_device = excluded.last_device,"
        " last_satisfaction = excluded.last_satisfaction,"
        " last_satisfaction_at = excluded.last_satisfaction_at,"
        " frequency_class = excluded.frequency_class, recency_class = excluded.recency_class,"
        " updated_at = now()",
        merged.customer_id,
        merged.order_count,
        merged.revenue_total,
        merged.first_order_at,
        merged.last_order_at,
        merged.categories,
        merged.products,
        merged.last_seen_at,
        merged.channels,
        merged.devices,
        merged.last_channel,
        merged.last_device,
        merged.last_satisfaction,
        merged.last_satisfaction_at,
        merged.frequency_class,
        merged.recency_class,
    )
    if target is None or target.recency_class == merged.recency_class:
        return None
    assert merged.last_seen_at is not None
    return RecencyChange(
        customer_id=into_id,
        from_class=target.recency_class,
        to_class=merged.recency_class,
        last_seen_at=merged.last_seen_at,
    )


def _combine(
    source: CustomerMetrics,
    target: CustomerMetrics | None,
    into_id: str,
    *,
    settings: CustomerDataSettings,
    now: datetime,
) -> CustomerMetrics:
    if target is None:
        return source.model_copy(update={"customer_id": into_id})

    def later_seen(field: str, at: str) -> Any:
        # The value of the side that saw it last, else the other side's.
        a, b = getattr(source, at), getattr(target, at)
        first, second = (
            (source, target)
            if a is not None and (b is None or a > b)
            else (
                target,
                source,
            )
        )
        value = getattr(first, field)
        return value if value is not None else getattr(second, field)

    seen_last = (
        source
        if source.last_seen_at is not None
        and (target.last_seen_at is None or source.last_seen_at > target.last_seen_at)
        else target
    )
    order_count = source.order_count + target.order_count
    revenue_total = source.revenue_total + target.revenue_total
    first_order = _least(source.first_order_at, target.first_order_at)
    last_order = _greatest(source.last_order_at, target.last_order_at)
    return CustomerMetrics(
        customer_id=into_id,
        order_count=order_count,
        revenue_total=revenue_total,
        first_order_at=first_order,
        last_order_at=last_order,
        categories=_sum_counts(source.categories, target.categories),
        products=_sum_counts(source.products, target.products),
        last_seen_at=_greatest(source.last_seen_at, target.last_seen_at),
        channels=_sum_counts(source.channels, target.channels),
        devices=_sum_counts(source.devices, target.devices),
        last_channel=later_seen("last_channel", "last_seen_at"),
        last_device=later_seen("last_device", "last_seen_at"),
        last_satisfaction=later_seen("last_satisfaction", "last_satisfaction_at"),
        last_satisfaction_at=_greatest(source.last_satisfaction_at, target.last_satisfaction_at),
        frequency_class=frequency_class(
            order_count=order_count,
            revenue_total=revenue_total,
            first_order_at=first_order,
            last_order_at=last_order,
            now=now,
            settings=settings,
        ),
        recency_class=seen_last.recency_class,
    )


def _sum_counts(
    a: Mapping[str, int | float], b: Mapping[str, int | float]
) -> dict[str, int | float]:
    total = dict(a)
    for key, units in b.items():
        total[key] = total.get(key, 0) + units
    return total


# The recency sweep.

# (from, to): the lost transitions first, so a customer who aged past both
# thresholds between two sweeps becomes lost at once rather than inactive and then lost.
_TRANSITIONS: Final[tuple[tuple[RecencyClass, RecencyClass], ...]] = (
    ("active", "lost"),
    ("inactive", "lost"),
    ("active", "inactive"),
)


async def sweep_recency(
    pool: asyncpg.Pool,
    *,
    now: datetime,
    settings: CustomerDataSettings,
    batch_size: int = 1000,
    index: TriggerIndex | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[IncomingEvent]:
    """Move the customers whose latest activity has aged past a threshold to ``inactive`` or
    ``lost``, and record each move as an engine event routed to journeys like any other.

    Each batch goes in two steps. First its events are ingested (committed with their outbox
    rows) under message ids that depend only on the customer, the new class and the latest
    activity. Then, in one transaction, the classes are updated and the segments that read
    metrics are re-evaluated for the customers moved. A sweep that dies between the steps
    finds the same customers again next time and rebuilds the same events, which ingest skips
    as duplicates: every change is recorded exactly once and no class changes unrecorded.

    The class update is guarded (still in the old class, still aged past the threshold), so
    a customer whose activity arrives meanwhile keeps the class that activity gave them, and
    a ``Became Active`` event follows the one just recorded: journeys end with the customer's
    true state.

    ``index`` routes the events (default: the deployed journeys and live segments);
    ``progress`` is told the running count of events after each batch. Returns the events.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if index is None:
        index = await _current_index(pool)
    recorded: list[IncomingEvent] = []
    for from_class, to_class in _TRANSITIONS:
        threshold = settings.recency.lost_after if to_class == "lost" else settings.recency.active
        cutoff = now - threshold
        after: tuple[datetime, str] | None = None
        while True:
            rows = await pool.fetch(
                # Served by the (recency_class, last_seen_at) index; keyset pages, so a row
                # that could not be moved is never read twice in one sweep.
                "SELECT customer_id, last_seen_at FROM customer_metrics"
                " WHERE recency_class = $1 AND last_seen_at < $2"
                "   AND ($3::timestamptz IS NULL OR (last_seen_at, customer_id) > ($3, $4))"
                " ORDER BY last_seen_at, customer_id LIMIT $5",
                from_class,
                cutoff,
                after[0] if after else None,
                after[1] if after else "",
                batch_size,
            )
            if not rows:
                break
            after = (rows[-1]["last_seen_at"], rows[-1]["customer_id"])
            changes = [
                RecencyChange(
                    customer_id=row["customer_id"],
                    from_class=from_class,
                    to_class=to_class,
                    last_seen_at=row["last_seen_at"],
                )
                for row in rows
            ]
            recorded.extend(await _record(pool, changes, cutoff, now, settings, index))
            if progress is not None:
                progress(len(recorded))
    return recorded


async def _current_index(pool: asyncpg.Pool) -> TriggerIndex:
    from journeyman.orchestrator.customers.sweep_segments import load_segments
    from journeyman.orchestrator.ingest import TriggerIndex
    from journeyman.orchestrator.storage import active_plans

    live, _ = await load_segments(pool)
    return TriggerIndex.build(*await active_plans(pool), segments=live)


async def _record(
    pool: asyncpg.Pool,
    changes: Sequence[RecencyChange],
    cutoff: datetime,
    now: datetime,
    settings: CustomerDataSettings,
    index: TriggerIndex,
) -> list[IncomingEvent]:
    """Record one batch of changes of the same kind: events first, then the classes."""
    from journeyman.orchestrator.customers.membership import SegmentIndex
    from journeyman.orchestrator.ingest import ingest
    from journeyman.orchestrator.ingest.store import refresh_memberships
    from journeyman.orchestrator.storage import notify_outbox

    from_class, to_class = changes[0].from_class, changes[0].to_class
    events = [
        change.event(occurred_at=became_at(change.last_seen_at, to_class, settings))
        for change in changes
    ]
    # Segments are left to the second step: here they would still see the old class.
    await ingest(pool, events=events, index=index.with_segments(SegmentIndex()))
    ids = [change.customer_id for change in changes]
    reading = {s.segment_id for s in index.segments.segments if s.reads_metrics}
    async with pool.acquire() as conn, conn.transaction():
        moved = [
            row["customer_id"]
            for row in await conn.fetch(
                "UPDATE customer_metrics SET recency_class = $2, updated_at = now()"
                " WHERE customer_id = ANY($1::text[]) AND recency_class = $3"
                "   AND last_seen_at < $4"
                " RETURNING customer_id",
                ids,
                to_class,
                from_class,
                cutoff,
            )
        ]
        if reading and moved:
            routed = await refresh_memberships(
                conn, index=index, customers={c: reading for c in moved}, now=now
            )
            if routed:
                await notify_outbox(conn)
    if len(moved) == len(ids):
        return events
    # Activity arrived between the two steps: those customers are active again.
    returned = await pool.fetch(
        "SELECT customer_id, last_seen_at FROM customer_metrics"
        " WHERE customer_id = ANY($1::text[]) AND recency_class = 'active'",
        sorted(set(ids) - set(moved)),
    )
    back = [
        RecencyChange(
            customer_id=row["customer_id"],
            from_class=to_class,
            to_class="active",
            last_seen_at=row["last_seen_at"],
        ).event(occurred_at=row["last_seen_at"])
        for row in returned
    ]
    if back:
        await ingest(pool, events=back, index=index)
    return events + back
