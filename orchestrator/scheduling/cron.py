"""Five-field cron expressions (minute hour day-of-month month day-of-week), in a time zone.

Supports ``*``, numbers, ranges ``a-b``, lists ``a,b``, steps ``*/n`` and ``a-b/n``, and
three-letter month and weekday names. As in classic cron, when both day fields are
restricted a day matches if either does. Sunday is 0 or 7.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
           ("day of week", 0, 7))  # fmt: skip
_PART = re.compile(r"(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?")
# A year and a day are enough to find the next time of any valid expression (Feb 29 needs
# up to eight years, so searching stops there).
_HORIZON = timedelta(days=366 * 8 + 2)


class CronError(ValueError):
    """An expression that is not valid cron; the message says which field and why."""


@dataclass(frozen=True)
class Cron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool  # day of month is *
    any_weekday: bool  # day of week is *

    @classmethod
    def parse(cls, expression: str) -> Cron:
        fields = expression.lower().split()
        if len(fields) != 5:
            raise CronError(
                "a cron expression has 5 fields (minute hour day month weekday);"
                f" got {expression!r}"
            )
        sets = [_field(text, *spec) for text, spec in zip(fields, _FIELDS, strict=True)]
        weekdays = frozenset(day % 7 for day in sets[4])
        return cls(expression, sets[0], sets[1], sets[2], sets[3], weekdays,
                   fields[2] == "*", fields[4] == "*")  # fmt: skip

    def matches(self, moment: datetime) -> bool:
        """Whether the wall-clock minute of ``moment`` (in its own zone) is a firing time."""
        if moment.minute not in self.minutes or moment.hour not in self.hours:
            return False
        if moment.month not in self.months:
            return False
        day_ok = moment.day in self.days
        weekday_ok = (moment.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime | None:
        """The first firing instant strictly after ``after``, or None if there is none."""
        local = after.astimezone(zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = local + _HORIZON
        while local < end:
            if local.month not in self.months:
                local = (local.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self.matches(local.replace(hour=min(self.hours), minute=min(self.minutes))):
                local = local.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if local.hour not in self.hours:
                local = local.replace(minute=0) + timedelta(hours=1)
                continue
            if local.minute not in self.minutes:
                local += timedelta(minutes=1)
                continue
            # Wall-clock arithmetic in a zone with DST: normalise through UTC.
            return local.replace(tzinfo=zone).astimezone(ZoneInfo("UTC"))
        return None


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        found = _PART.fullmatch(part)
        if found is None:
            raise CronError(f"{name}: cannot read {part!r}")
        span, step_text = found.groups()
        step = int(step_text) if step_text else 1
        if step < 1:
            raise CronError(f"{name}: a step must be at least 1")
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, b = span.split("-")
            first, last = _value(a, name, low, high), _value(b, name, low, high)
            if first > last:
                raise CronError(f"{name}: range {span} goes backwards")
        else:
            first = _value(span, name, low, high)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _value(text: str, name: str, low: int, high: int) -> int:
    names = _MONTHS if name == "month" else _DAYS if name == "day of week" else []
    if text in names:
        return names.index(text) + (1 if name == "month" else 0)
    if not text.isdigit():
        raise CronError(f"{name}: {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name}: {value} is outside {low}-{high}")
    return value
