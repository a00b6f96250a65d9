"""Behavioural metrics per customer, kept current as events arrive, and the recency sweep.

``fold_events`` runs inside the ingest transaction for a batch's stored events: one statement
reads and locks the customers' rows, the events are applied in order in memory, and one
upsert (``upsert_sql``, written by ingest with its other rows) writes them, however many
events and customers (``apply_events`` and ``apply_event`` run both statements). ``load``
reads a customer's metrics with what is derived from them, ``merge`` joins two customers'
metrics when their identities merge, and ``sweep_recency`` turns the passing of time into
``Became Inactive`` / ``Became Lost`` events.

Events the engine records itself (``context.source`` is ``journeyman``) are not customer
activity and change nothing here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import asyncpg
import orjson
from pydantic import BaseModel, ConfigDict, computed_field

from journeyman.workflows.expressions.syntax import DAYS_SINCE_METRICS, METRICS

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

    def as_condition_values(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """What ``metrics.NAME`` reads in a condition: plain numbers, text and lists, times as
        ISO-8601 text in UTC (``days_since_*`` are counted from those when evaluated).

        ``names`` limits it to the metrics a condition reads (``Needs.metrics``): some, such
        as the top categories, take a while to work out.
        """
        if names is None:
            return {name: read(self) for name, read in _CONDITION_VALUES.items()}
        # ``days_since_X`` is counted from the stored time it names, when evaluated.
        wanted = {DAYS_SINCE_METRICS.get(name, name) for name in names}
        return {name: read(self) for name, read in _CONDITION_VALUES.items() if name in wanted}


def _average_order_value(metrics: CustomerMetrics) -> float | None:
    average = metrics.average_order_value
    return None if average is None else float(average)


_CONDITION_VALUES: Final[dict[str, Callable[[CustomerMetrics], Any]]] = {
    "frequency": lambda m: m.frequency_class,
    "recency": lambda m: m.recency_class,
    "order_count": lambda m: m.order_count,
    "revenue_total": lambda m: float(m.revenue_total),
    "average_order_value": _average_order_value,
    "first_order_at": lambda m: _iso(m.first_order_at),
    "last_order_at": lambda m: _iso(m.last_order_at),
    "top_categories": lambda m: m.top_categories,
    "top_products": lambda m: m.top_products,
    "last_seen_at": lambda m: _iso(m.last_seen_at),
    "preferred_channel": lambda m: m.preferred_channel,
    "preferred_device": lambda m: m.preferred_device,
    "last_channel": lambda m: m.last_channel,
    "last_device": lambda m: m.last_device,
    "last_satisfaction": lambda m: m.last_satisfaction,
    "last_satisfaction_at": lambda m: _iso(m.last_satisfaction_at),
}


def condition_values(
    metrics: CustomerMetrics | None, names: Iterable[str] | None = None
) -> dict[str, Any]:
    """``metrics.as_condition_values(names)``; for a customer never seen, no orders and no
    recency (``metrics.recency is null`` holds, ``metrics.frequency == "none"`` too)."""
    if metrics is None:
        values = CustomerMetrics(customer_id="").as_condition_values(names)
        if "recency" in values:
            values["recency"] = None
        return values
    return metrics.as_condition_values(names)


def _top(counts: Mapping[str, int | float], n: int) -> list[str]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [name for name, units in ranked[:n] if units > 0]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


# What one event adds to the metrics.


# No categories or products: shared, and read-only so that nobody fills it by mistake.
_NO_UNITS: Final[Mapping[str, int | float]] = MappingProxyType({})


class Observation(NamedTuple):
    """What one stored event contributes, read through the configured event mapping."""

    at: datetime  # when it happened, never after ``now`` (client clocks run fast at times)
    channel: str | None = None
    device: str | None = None
    order: bool = False
    revenue: Decimal = Decimal(0)
    categories: Mapping[str, int | float] = _NO_UNITS
    products: Mapping[str, int | float] = _NO_UNITS
    satisfaction: float | None = None


def observe(
    event: IncomingEvent, *, settings: CustomerDataSettings, now: datetime
) -> Observation | None:
    """What ``event`` adds to its customer's metrics; None when it is not customer activity."""
    context = event.context
    if context.get("source") == ENGINE_SOURCE:
        return None
    occurred = event.occurred_at
    at = occurred if occurred.tzinfo else occurred.replace(tzinfo=UTC)
    at = at if at <= now else now
    interaction = settings.interaction
    channel = _name(_path(context, interaction.channel))
    device = _name(_path(context, interaction.device))
    if event.type != "track":
        return Observation(at, channel, device)
    order: dict[str, Any] = {}
    satisfaction: float | None = None
    if event.event == settings.orders.event:
        order = _order(event.properties, settings)
    if event.event == settings.satisfaction.event:
        score = _number(event.properties.get(settings.satisfaction.score))
        satisfaction = None if score is None else float(score)
    return Observation(at, channel, device, satisfaction=satisfaction, **order)


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


@functools.cache
def _parts(dotted: str) -> tuple[str, ...]:
    # The configured paths are few: each is split once, not for every event.
    return tuple(dotted.split("."))


def _path(data: Mapping[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in _parts(dotted):
        # dict first: the ABC check is slow, and events hold plain dicts.
        if not isinstance(value, dict) and not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _name(value: Any) -> str | None:
    if value is None or isinstance(value, bool) or not isinstance(value, str | int):
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


# One row per customer: the counts are added (so events of concurrent transactions for a
# customer not yet stored all count), the rest as ``_Fold`` computed it from the locked row.
def upsert_sql(param: str = "$1") -> str:
    """The statement writing ``MetricsUpdate.rows`` (passed as ``param``); a CTE in ingest."""
    return f"""
INSERT INTO customer_metrics AS m (
    customer_id, order_count, revenue_total, first_order_at, last_order_at, categories,
    products, last_seen_at, channels, devices, last_channel, last_device, last_satisfaction,
    last_satisfaction_at, frequency_class, recency_class, updated_at)
SELECT x->>0, (x->>1)::int, (x->>2)::numeric, (x->>3)::timestamptz, (x->>4)::timestamptz,
    x->5, x->6, (x->>7)::timestamptz, x->8, x->9, x->>10, x->>11, (x->>12)::numeric,
    (x->>13)::timestamptz, x->>14, x->>15, now()
FROM jsonb_array_elements({param}::text::jsonb) AS rows(x)
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


# The metrics (as conditions name them) that only an order moves.
_ORDER_METRICS: Final = frozenset(
    {
        "order_count",
        "revenue_total",
        "average_order_value",
        "first_order_at",
        "last_order_at",
        "top_categories",
        "top_products",
        "days_since_first_order",
        "days_since_last_order",
    }
)


def _add_units(
    counts: dict[str, Decimal] | None, more: Mapping[str, int | float]
) -> dict[str, Decimal] | None:
    """``counts`` with ``more`` added (made if need be), as decimals, as Postgres adds them:
    0.1 and 0.2 units are 0.3, not 0.30000000000000004."""
    if not more:
        return counts
    counts = {} if counts is None else counts
    for key, units in more.items():
        counts[key] = counts.get(key, Decimal(0)) + Decimal(str(units))
    return counts


# Shared by every row without counts; only ever written out (orjson takes dicts only).
_NO_COUNTS: Final[dict[str, int | float]] = {}


def _plain(counts: Mapping[str, Decimal] | None) -> dict[str, int | float]:
    if not counts:
        return _NO_COUNTS
    return {
        key: int(total) if total == total.to_integral_value() else float(total)
        for key, total in counts.items()
    }


class _Fold:
    """One customer's events of a batch, applied in order to the row read under lock.

    The result is one row for ``upsert_sql`` that leaves the customer as applying the events one
    at a time would: counts and totals are sums, first and latest times the least and the
    greatest, and the latest channel, device and satisfaction are those of the last event
    that was, when it came, at least as recent as everything before it (what ``_latest`` asks
    of a single event; the row's latest time is then at least that event's, so the upsert
    takes the value). The frequency class depends on the totals alone, so it is worked out
    once, from the final ones.
    """

    __slots__ = (
        "categories",
        "channel",
        "channels",
        "customer_id",
        "device",
        "devices",
        "first_order_at",
        "last_order_at",
        "last_seen_at",
        "new_first_order",
        "new_last_order",
        "new_last_seen",
        "new_satisfaction_at",
        "old_frequency",
        "old_last_seen_at",
        "old_recency",
        "order_count",
        "orders",
        "products",
        "recency",
        "revenue",
        "revenue_total",
        "satisfaction",
        "satisfaction_at",
    )

    def __init__(self, customer_id: str, row: Mapping[str, Any] | None) -> None:
        self.customer_id = customer_id
        self.old_frequency: FrequencyClass | None = row["frequency_class"] if row else None
        self.old_last_seen_at: datetime | None = row["last_seen_at"] if row else None
        self.old_recency: RecencyClass | None = row["recency_class"] if row else None
        if row is None:
            self.order_count = 0
            self.revenue_total = Decimal(0)
            self.first_order_at: datetime | None = None
            self.last_order_at: datetime | None = None
            self.last_seen_at: datetime | None = None
            self.satisfaction_at: datetime | None = None
            self.recency: RecencyClass | None = None
        else:
            self.order_count = row["order_count"]
            self.revenue_total = row["revenue_total"]
            self.first_order_at = row["first_order_at"]
            self.last_order_at = row["last_order_at"]
            self.last_seen_at = row["last_seen_at"]
            self.satisfaction_at = row["last_satisfaction_at"]
            self.recency = row["recency_class"]
        # What this batch adds.
        self.orders = 0
        self.revenue = Decimal(0)
        self.new_first_order: datetime | None = None
        self.new_last_order: datetime | None = None
        self.new_last_seen: datetime | None = None
        # Made when first needed: most events bring no order, many no channel or device.
        self.categories: dict[str, Decimal] | None = None
        self.products: dict[str, Decimal] | None = None
        self.channels: dict[str, Decimal] | None = None
        self.devices: dict[str, Decimal] | None = None
        self.channel: str | None = None
        self.device: str | None = None
        self.satisfaction: float | None = None
        self.new_satisfaction_at: datetime | None = None

    def add(
        self, seen: Observation, *, now: datetime, settings: CustomerDataSettings
    ) -> RecencyChange | None:
        """Apply one event; the recency change it makes, if any."""
        at = seen.at
        if seen.order:
            self.orders += 1
            self.order_count += 1
            self.revenue += seen.revenue
            self.revenue_total += seen.revenue
            self.first_order_at = _least(self.first_order_at, at)
            self.last_order_at = _greatest(self.last_order_at, at)
            self.new_first_order = _least(self.new_first_order, at)
            self.new_last_order = _greatest(self.new_last_order, at)
            self.categories = _add_units(self.categories, seen.categories)
            self.products = _add_units(self.products, seen.products)
        latest = self.last_seen_at is None or at >= self.last_seen_at
        if seen.channel:
            self.channels = _add_units(self.channels, {seen.channel: 1})
            if latest:
                self.channel = seen.channel
        if seen.device:
            self.devices = _add_units(self.devices, {seen.device: 1})
            if latest:
                self.device = seen.device
        if seen.satisfaction is not None and (
            self.satisfaction_at is None or at >= self.satisfaction_at
        ):
            self.satisfaction, self.satisfaction_at = seen.satisfaction, at
            self.new_satisfaction_at = at
        if latest:
            self.last_seen_at = at
        self.new_last_seen = _greatest(self.new_last_seen, at)
        previous = self.recency
        if previous == "active":
            return None  # activity keeps an active customer active, however old it is
        assert self.last_seen_at is not None
        recent = recency_class(self.last_seen_at, now, settings)
        # A new customer starts in the class their activity puts them in; after that only
        # activity recent enough makes them active, and only the sweep ages them.
        self.recency = recent if previous is None or recent == "active" else previous
        if previous is None or previous == self.recency:
            return None
        return RecencyChange(
            customer_id=self.customer_id,
            from_class=previous,
            to_class=self.recency,
            last_seen_at=self.last_seen_at,
        )

    def moved(self, frequency: FrequencyClass) -> frozenset[str]:
        """The metrics (as conditions name them) whose value these events may have changed;
        every one for a customer seen for the first time."""
        if self.old_recency is None:
            return frozenset(METRICS)
        names: set[str] = set()
        if self.orders:
            names.update(_ORDER_METRICS)
        if self.last_seen_at != self.old_last_seen_at:
            names.update(("last_seen_at", "days_since_last_seen"))
        if self.channels:
            names.update(("preferred_channel", "last_channel"))
        if self.devices:
            names.update(("preferred_device", "last_device"))
        if self.new_satisfaction_at is not None:
            names.update(("last_satisfaction", "last_satisfaction_at"))
        if frequency != self.old_frequency:
            names.add("frequency")
        if self.recency != self.old_recency:
            names.add("recency")
        return frozenset(names)

    def frequency(self, *, now: datetime, settings: CustomerDataSettings) -> FrequencyClass:
        return frequency_class(
            order_count=self.order_count,
            revenue_total=self.revenue_total,
            first_order_at=self.first_order_at,
            last_order_at=self.last_order_at,
            now=now,
            settings=settings,
        )

    def row(self, frequency: FrequencyClass) -> tuple[Any, ...]:
        assert self.recency is not None
        return (
            self.customer_id,
            self.orders,
            str(self.revenue),  # as text: exact, as numeric adds it
            self.new_first_order,
            self.new_last_order,
            _plain(self.categories),
            _plain(self.products),
            self.new_last_seen,
            _plain(self.channels),
            _plain(self.devices),
            self.channel,
            self.device,
            self.satisfaction,
            self.new_satisfaction_at,
            frequency,
            self.recency,
        )


@dataclass(frozen=True)
class MetricsUpdate:
    """What a batch of events does to its customers' metrics, to be written by the caller."""

    rows: str | None  # for ``upsert_sql``, as JSON; None: nothing to write
    changes: list[tuple[int, RecencyChange]]  # (position of the event that made it, change)
    # customer -> the metrics (as conditions name them) whose value may have changed
    moved: dict[str, frozenset[str]] = field(default_factory=dict)


async def fold_events(
    conn: asyncpg.Connection,
    events: Sequence[tuple[str, IncomingEvent]],
    *,
    settings: CustomerDataSettings,
    now: datetime | None = None,
) -> MetricsUpdate:
    """Apply stored events, (customer id, event) in order, to their customers' metrics rows,
    read and locked in one statement; the rows to write and the recency changes.

    Each customer ends as ``apply_event`` for each of their events in turn would leave them.
    The changes carry the position of the event that made each (the caller records
    ``change.event(...)`` after that event); engine events change nothing.
    """
    now = now or datetime.now(UTC)
    seen: list[tuple[int, str, Observation]] = []
    for position, (customer_id, event) in enumerate(events):
        observed = observe(event, settings=settings, now=now)
        if observed is not None:
            seen.append((position, customer_id, observed))
    if not seen:
        return MetricsUpdate(None, [])
    # The rows stay locked until the caller commits, so concurrent events for a customer
    # (and the sweep's class update) apply one after the other, each seeing the last. They
    # are locked in id order, so concurrent batches cannot deadlock on them.
    rows = {
        row["customer_id"]: row
        for row in await conn.fetch(
            # A join on the ids rather than ``= ANY($1)``: Postgres re-plans the latter's
            # generic plan for every call once the table churns (several ms for a batch).
            "SELECT m.customer_id, m.order_count, m.revenue_total, m.first_order_at,"
            " m.last_order_at, m.last_seen_at, m.last_satisfaction_at, m.recency_class,"
            " m.frequency_class"
            " FROM unnest($1::text[]) AS wanted(customer_id)"
            " JOIN customer_metrics m USING (customer_id) ORDER BY m.customer_id FOR UPDATE OF m",
            sorted({customer_id for _, customer_id, _ in seen}),
        )
    }
    folds: dict[str, _Fold] = {}
    changes: list[tuple[int, RecencyChange]] = []
    for position, customer_id, observed in seen:
        fold = folds.get(customer_id)
        if fold is None:
            fold = folds[customer_id] = _Fold(customer_id, rows.get(customer_id))
        change = fold.add(observed, now=now, settings=settings)
        if change is not None:
            changes.append((position, change))
    written: list[tuple[Any, ...]] = []
    moved: dict[str, frozenset[str]] = {}
    for customer_id in sorted(folds):
        fold = folds[customer_id]
        frequency = fold.frequency(now=now, settings=settings)
        written.append(fold.row(frequency))
        moved[customer_id] = fold.moved(frequency)
    # One JSON array of rows as the one parameter (as ingest writes its rows).
    encoded = orjson.dumps(written, option=orjson.OPT_NAIVE_UTC).decode()
    return MetricsUpdate(encoded, changes, moved)


async def apply_events(
    conn: asyncpg.Connection,
    events: Sequence[tuple[str, IncomingEvent]],
    *,
    settings: CustomerDataSettings,
    now: datetime | None = None,
) -> list[tuple[int, RecencyChange]]:
    """``fold_events``, written at once: one read and one write for all the events."""
    update = await fold_events(conn, events, settings=settings, now=now)
    if update.rows is not None:
        await conn.execute(upsert_sql(), update.rows)
    return update.changes


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
    changes = await apply_events(conn, [(customer_id, event)], settings=settings, now=now)
    return changes[0][1] if changes else None


def _least(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _greatest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


# Reading.


async def load(conn: asyncpg.Connection | asyncpg.Pool, customer_id: str) -> CustomerMetrics | None:
    """The customer's metrics, or None when no activity of theirs was ever stored."""
    row = await conn.fetchrow("SELECT * FROM customer_metrics WHERE customer_id = $1", customer_id)
    return None if row is None else _from_row(row)


async def load_many(
    conn: asyncpg.Connection | asyncpg.Pool, customer_ids: Iterable[str]
) -> dict[str, CustomerMetrics]:
    """``load`` for several customers in one round trip; those never active are left out."""
    rows = await conn.fetch(
        "SELECT m.* FROM unnest($1::text[]) AS wanted(customer_id)"
        " JOIN customer_metrics m USING (customer_id)",
        sorted(set(customer_ids)),
    )
    return {row["customer_id"]: _from_row(row) for row in rows}


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
        after: tuple[date, str] | None = None
        while True:
            rows = await pool.fetch(
                # Served by the (recency_class, last_seen_day, customer_id) index (by day, so
                # that ingest's updates of last_seen_at leave it alone); keyset pages, so a
                # row that could not be moved is never read twice in one sweep.
                "SELECT customer_id, last_seen_at, last_seen_day FROM customer_metrics"
                " WHERE recency_class = $1 AND last_seen_day <= ($2 AT TIME ZONE 'UTC')::date"
                "   AND last_seen_at < $2"
                "   AND ($3::date IS NULL OR (last_seen_day, customer_id) > ($3, $4))"
                " ORDER BY last_seen_day, customer_id LIMIT $5",
                from_class,
                cutoff,
                after[0] if after else None,
                after[1] if after else "",
                batch_size,
            )
            if not rows:
                break
            after = (rows[-1]["last_seen_day"], rows[-1]["customer_id"])
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
