"""When a plan's timed rules fall for one customer: waits until a local time or a profile
date, and the end of quiet hours. Shared by the real activities and the simulated ones, so a
simulation waits exactly as production does. Pure: the caller supplies traits and ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from . import local_time
from .conditions import lookup
from .plan import Delivery, WaitStep


def customer_zone(traits: Mapping[str, Any], rules: Delivery) -> ZoneInfo:
    """The customer's time zone: the profile's, else the journey's default, else UTC."""
    own = traits.get("timezone")
    return local_time.zone_for(own if isinstance(own, str) else None, rules.timezone)


def wake_time(
    step: WaitStep, traits: Mapping[str, Any], rules: Delivery, now: datetime
) -> datetime | None:
    """When a timed wait ends, in UTC; None when the profile holds no usable date."""
    zone = customer_zone(traits, rules)
    if step.until_time is not None:
        wanted = step.until_time
        return local_time.next_local_time(now, zone, time.fromisoformat(wanted.at), wanted.weekdays)
    assert step.until_date is not None
    rule = step.until_date
    day = local_time.date_from_trait(lookup(traits, rule.trait))
    if day is None:
        return None
    try:
        return local_time.next_date_instant(
            now,
            zone,
            day,
            offset_seconds=rule.offset_seconds,
            at=time.fromisoformat(rule.at),
            yearly=rule.yearly,
        )
    except OverflowError:
        return None  # a placeholder date such as 9999-12-31: nothing to wait for


def quiet_until(traits: Mapping[str, Any], rules: Delivery, now: datetime) -> datetime | None:
    """When the journey's quiet hours end for this customer, if they are in them now."""
    quiet = rules.quiet_hours
    if quiet is None:
        return None
    return local_time.quiet_until(
        now,
        customer_zone(traits, rules),
        time.fromisoformat(quiet.start),
        time.fromisoformat(quiet.end),
    )
