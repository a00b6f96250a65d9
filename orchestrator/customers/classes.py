"""The behavioural classes as pure rules: purchase frequency and recency.

Pure functions of stored metrics, the current time and the configured thresholds, so ingest,
identity merges and the sweep classify alike and tests can craft any history.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final, Literal

from .settings import CustomerDataSettings

FrequencyClass = Literal["none", "sporadic", "regular", "loyal", "vip"]
RecencyClass = Literal["active", "inactive", "lost"]

# Lowest first; the rules are tried from the highest down (vip > loyal > regular > sporadic).
FREQUENCY_CLASSES: Final[tuple[FrequencyClass, ...]] = (
    "none",
    "sporadic",
    "regular",
    "loyal",
    "vip",
)
RECENCY_CLASSES: Final[tuple[RecencyClass, ...]] = ("active", "inactive", "lost")

_DAY = timedelta(days=1)


def average_gap_days(
    order_count: int, first_order_at: datetime | None, last_order_at: datetime | None
) -> float | None:
    """Mean days between consecutive orders (first to last over the gaps), None below two."""
    if order_count < 2 or first_order_at is None or last_order_at is None:
        return None
    return max(0.0, (last_order_at - first_order_at) / _DAY) / (order_count - 1)


def tenure_days(first_order_at: datetime | None, now: datetime) -> float:
    """Days since the first order (0 without one, and for an order dated after ``now``)."""
    if first_order_at is None:
        return 0.0
    return max(0.0, (now - first_order_at) / _DAY)


def frequency_class(
    *,
    order_count: int,
    revenue_total: Decimal | float,
    first_order_at: datetime | None,
    last_order_at: datetime | None,
    now: datetime,
    settings: CustomerDataSettings,
) -> FrequencyClass:
    """The purchase frequency class: the highest rule that holds.

    - vip: revenue total at least ``vip.min_revenue`` and/or at least ``vip.min_orders``
      orders (``vip.require``: any or all of the thresholds that are set);
    - loyal: at least ``loyal.min_orders`` orders, the first ``loyal.min_tenure_days`` ago
      or more;
    - regular: at least ``regular.min_orders`` orders, on average at most
      ``regular.max_average_gap_days`` apart;
    - sporadic: at least one order; none: no orders.
    """
    if order_count <= 0:
        return "none"
    rules = settings.frequency
    vip = rules.vip
    reached: list[bool] = []  # one answer per threshold that is set
    if vip.min_revenue is not None:
        reached.append(revenue_total >= vip.min_revenue)
    if vip.min_orders is not None:
        reached.append(order_count >= vip.min_orders)
    if reached and (any(reached) if vip.require == "any" else all(reached)):
        return "vip"
    loyal = rules.loyal
    if (
        order_count >= loyal.min_orders
        and tenure_days(first_order_at, now) >= loyal.min_tenure_days
    ):
        return "loyal"
    regular = rules.regular
    gap = average_gap_days(order_count, first_order_at, last_order_at)
    if (
        order_count >= regular.min_orders
        and gap is not None
        and gap <= regular.max_average_gap_days
    ):
        return "regular"
    return "sporadic"


def recency_class(
    last_seen_at: datetime, now: datetime, settings: CustomerDataSettings
) -> RecencyClass:
    """Active while the latest activity is at most ``active_days`` old, inactive while at most
    ``lost_after_days`` old, lost beyond (both boundaries belong to the younger class)."""
    age = now - last_seen_at
    if age <= settings.recency.active:
        return "active"
    if age <= settings.recency.lost_after:
        return "inactive"
    return "lost"


def became_at(last_seen_at: datetime, to: RecencyClass, settings: CustomerDataSettings) -> datetime:
    """When time alone moved a customer last seen at ``last_seen_at`` into class ``to``."""
    if to == "inactive":
        return last_seen_at + settings.recency.active
    if to == "lost":
        return last_seen_at + settings.recency.lost_after
    return last_seen_at
