"""Local wall-clock scheduling: waits until a customer's 09:00, birthdays, quiet hours.

Pure functions that turn a customer's local calendar into absolute UTC instants for a workflow to
sleep until. ``now`` and every result are aware datetimes in UTC; ``at``, ``start`` and ``end``
are naive wall-clock times in the customer's zone.

Daylight saving time, one rule for every function:

- A wall time that does not exist (the spring-forward gap) is read with the offset in force
  before the gap, so it lands as far after the gap as it was into it: 02:30 on the day Paris
  springs forward is 03:30 local, 01:30 UTC.
- A wall time that happens twice (the fall-back repeat) means its first occurrence only, so a
  daily send never fires twice on that night. Quiet hours are the exception: they are a span of
  wall time, so one that ends inside the repeated hour ends again when the clock reads its end
  the second time.

Both are what ``fold=0`` gives (PEP 495). These run in activities; nothing here imports Temporal.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

# In ``date.weekday()`` order, so a day's position is its weekday number.
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Built at import so that a host without time zone data fails when the worker starts rather than
# quietly scheduling every customer in UTC.
UTC_ZONE = ZoneInfo("UTC")

# The longest IANA name is about half this; anything longer is not a zone.
MAX_ZONE_NAME = 64

# IANA names are slash-separated words: no dots, so no ``..`` and no stray data files.
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")

# A date, optionally followed by a time after ``T`` or a space: ``fromisoformat`` alone would
# take any character as the separator. ``[0-9]``, because ``\d`` also matches other scripts' digits.
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[Tt ].+)?")

_DAY = 86400
_SHORTEST_YEAR = 365 * _DAY


def zone_for(*candidates: str | None) -> ZoneInfo:
    """The first candidate that names an IANA time zone, else UTC; never raises."""
    for candidate in candidates:
        zone = _zone(candidate)
        if zone is not None:
            return zone
    return UTC_ZONE


def _zone(name: object) -> ZoneInfo | None:
    # Profile traits are customer data, whatever their declared type: check the shape before
    # the name reaches the file system.
    if not isinstance(name, str):
        return None
    name = name.strip()
    if len(name) > MAX_ZONE_NAME or not _ZONE_NAME.fullmatch(name):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def next_local_time(
    now: datetime, zone: ZoneInfo, at: time, weekdays: Collection[Weekday] = WEEKDAYS
) -> datetime:
    """The first instant at or after ``now`` when the clock in ``zone`` reads ``at`` on one of
    ``weekdays``; DST as in the module docstring."""
    allowed = _weekday_numbers(weekdays)
    _check_wall(at)
    today = _local(now, zone).date()
    # Today's time may have passed, so the same weekday a week on is the furthest answer.
    for ahead in range(8):
        day = today + timedelta(days=ahead)
        if day.weekday() in allowed:
            instant = _instant(day, at, zone)
            if instant >= now:
                return instant
    raise AssertionError("an allowed weekday always occurs within eight days")


def date_from_trait(value: object) -> date | None:
    """A profile trait as a date: ``1964-03-02``, an ISO datetime string, a date or datetime.

    Datetimes keep the date as written, without conversion to any zone: ``2024-02-29T23:30Z`` is
    29 February. Anything else (numbers, other formats, None) gives None.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not _ISO_DATE.fullmatch(text):
        return None
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        return None


def next_date_instant(
    now: datetime,
    zone: ZoneInfo,
    day: date,
    *,
    offset_seconds: int = 0,
    at: time = time(9, 0),
    yearly: bool = False,
) -> datetime | None:
    """The instant of ``at`` on ``day`` in ``zone``, moved by ``offset_seconds``.

    An offset in whole days moves the date and keeps the wall time (seven days before a 09:00
    expiry is 09:00, even across a DST change); any other offset is an absolute duration.

    Without ``yearly``, None when that instant is before ``now``: the date has passed. With
    ``yearly`` (birthdays, renewals), the first anniversary from ``day`` on whose instant is at or
    after ``now``; 29 February falls on 28 February in other years.

    Raises ``OverflowError`` for an instant outside ``datetime``'s years 1 to 9999.
    """
    _check_wall(at)
    local = _local(now, zone)
    if not yearly:
        instant = _shifted(day, at, zone, offset_seconds)
        return instant if instant >= now else None
    # Start from a year whose instant is surely before now, even when a positive offset carries
    # it into a later year, so that the first one at or after now is never skipped.
    years_back = -(-max(offset_seconds, 0) // _SHORTEST_YEAR) + 1
    year = max(day.year, local.year - years_back)
    while True:
        instant = _shifted(_anniversary(day, year), at, zone, offset_seconds)
        if instant >= now:
            return instant
        year += 1


def quiet_until(now: datetime, zone: ZoneInfo, start: time, end: time) -> datetime | None:
    """When local ``now`` is within quiet hours [``start``, ``end``), the instant they end.

    The hours may wrap midnight (21:00 to 08:00); ``start == end`` means none. Outside quiet
    hours, None.
    """
    _check_wall(start)
    _check_wall(end)
    if start == end:
        return None
    local = _local(now, zone)
    wall = local.time()
    inside = start <= wall < end if start < end else (wall >= start or wall < end)
    if not inside:
        return None
    # In the repeated hour after a fall-back the clock reads ``end`` twice: if the first has
    # passed, the second ends the hours, rather than ``end`` a day later.
    first = _instant(local.date(), end, zone)
    repeat = _instant(local.date(), end, zone, fold=1)
    if first < now <= repeat:
        return repeat
    return next_local_time(now, zone, end)


def _instant(day: date, at: time, zone: ZoneInfo, *, fold: Literal[0, 1] = 0) -> datetime:
    # fold=0 takes the offset before a transition: see the module docstring.
    return datetime.combine(day, at.replace(fold=fold), tzinfo=zone).astimezone(UTC)


def _shifted(day: date, at: time, zone: ZoneInfo, offset_seconds: int) -> datetime:
    days, rest = divmod(offset_seconds, _DAY)
    if rest == 0:
        return _instant(day + timedelta(days=days), at, zone)
    return _instant(day, at, zone) + timedelta(seconds=offset_seconds)


def _anniversary(day: date, year: int) -> date:
    if (day.month, day.day) == (2, 29) and not calendar.isleap(year):
        return date(year, 2, 28)
    return day.replace(year=year)


def _local(now: datetime, zone: ZoneInfo) -> datetime:
    # A naive datetime would silently be read in the host's zone.
    if now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    return now.astimezone(zone)


def _check_wall(at: time) -> None:
    if at.tzinfo is not None:
        raise ValueError(f"expected a wall-clock time without tzinfo, got {at!r}")


def _weekday_numbers(weekdays: Collection[Weekday]) -> frozenset[int]:
    if not weekdays:
        raise ValueError("weekdays must name at least one day")
    unknown = sorted(set(weekdays) - set(WEEKDAYS))
    if unknown:
        raise ValueError(f"unknown weekdays {unknown}, expected some of {', '.join(WEEKDAYS)}")
    return frozenset(WEEKDAYS.index(day) for day in weekdays)
