"""Evaluate parsed conditions against a customer's traits, triggering event and event history.

Pure: the caller loads the ``Context`` first. Data of an unexpected shape never raises; it
makes the comparison that meets it false, because a branch must always be able to decide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .syntax import (
    DAYS_SINCE_METRICS,
    And,
    Behaviour,
    Between,
    Compare,
    Constant,
    Contains,
    Expression,
    In,
    IsNull,
    ListOf,
    Not,
    Or,
    Reference,
)


class _Missing:
    """A path that leads nowhere: unlike a stored null, equal to nothing."""

    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class StoredEvent:
    name: str
    properties: Mapping[str, Any]
    occurred_at: datetime


@dataclass(frozen=True)
class Context:
    traits: Mapping[str, Any]
    event: Mapping[str, Any]  # the triggering event's properties; empty when there is none
    history: Mapping[str, Sequence[StoredEvent]]  # by event name, in any order
    now: datetime  # aware, UTC
    # The customer's behavioural metrics by name (``STORED_METRICS``); empty when not loaded.
    metrics: Mapping[str, Any] = field(default_factory=dict)


def evaluate(expr: Expression, context: Context) -> bool:
    """True when the condition holds: a bare value holds when true, non-zero or non-empty."""
    return _truthy(_value(expr, context, None))


def evaluate_value(expr: Expression, context: Context) -> Any:
    """The value of ``expr``; a missing trait or property is ``None``."""
    return _present(_value(expr, context, None))


def _value(expr: Expression, ctx: Context, counted: Mapping[str, Any] | None) -> Any:
    # ``counted`` holds the properties of the event a behaviour call's where: is looking at.
    match expr:
        case Constant(value):
            return value
        case ListOf(items):
            return [_present(_value(item, ctx, counted)) for item in items]
        case Reference("metrics", (name,)):
            return _metric(name, ctx)
        case Reference(scope, path):
            source = {"profile": ctx.traits, "event": ctx.event}.get(scope, counted)
            return _lookup(source, path)
        case Behaviour():
            return _behaviour(expr, ctx)
        case Compare(op, left, right):
            return _compare(op, _value(left, ctx, counted), _value(right, ctx, counted))
        case In(value, options, negated):
            found = _value(value, ctx, counted)
            if found is _MISSING:
                return negated  # like != : a missing value is not in any list
            hit = any(_equal(found, option) for option in _value(options, ctx, counted))
            return hit != negated
        case Between(value, low, high):
            found = _value(value, ctx, counted)
            return _compare(">=", found, _value(low, ctx, counted)) and _compare(
                "<=", found, _value(high, ctx, counted)
            )
        case Contains(container, item):
            return _contains(_value(container, ctx, counted), _value(item, ctx, counted))
        case IsNull(value, negated):
            null = _value(value, ctx, counted) in (_MISSING, None)
            return null != negated
        case Not(operand):
            return not _truthy(_value(operand, ctx, counted))
        case And(operands):
            return all(_truthy(_value(o, ctx, counted)) for o in operands)
        case Or(operands):
            return any(_truthy(_value(o, ctx, counted)) for o in operands)
    raise TypeError(f"not an expression: {expr!r}")  # a caller's bug, not a data problem


def _lookup(source: Any, path: Sequence[str]) -> Any:
    value = source
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _metric(name: str, ctx: Context) -> Any:
    since = DAYS_SINCE_METRICS.get(name)
    if since is None:
        return _lookup(ctx.metrics, (name,))
    stored = _lookup(ctx.metrics, (since,))
    if stored is _MISSING:
        return _MISSING
    moment = _as_time(stored)
    if moment is None:
        return None  # never ordered, never seen: like days_since() without a match
    # Clock skew can date a time after now: that is still "today".
    return max(0, (_aware(ctx.now) - _aware(moment)) // _DAY)


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _present(value: Any) -> Any:
    return None if value is _MISSING else value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _truthy(value: Any) -> bool:
    if value is _MISSING or value is None:
        return False
    if isinstance(value, bool):
        return value
    if _is_number(value):
        return bool(value != 0)
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) > 0
    return True


def _equal(a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return False
    # JSON's true is not 1, though Python's True == 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except Exception:  # an exotic value from a caller; unequal rather than a failed branch
        return False


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    both_numbers = _is_number(left) and _is_number(right)
    if not (both_numbers or (isinstance(left, str) and isinstance(right, str))):
        return False
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    if op == "<":
        return bool(left < right)
    return bool(left <= right)


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, list | tuple):
        return any(_equal(element, item) for element in container)
    return False


def _aware(moment: datetime) -> datetime:
    # Naive times are taken as UTC rather than failing the comparison with aware ones.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _matching(call: Behaviour, ctx: Context) -> list[StoredEvent]:
    since = None if call.within is None else _aware(ctx.now) - timedelta(seconds=call.within)
    found = []
    for stored in ctx.history.get(call.event, ()):
        if since is not None and not _aware(stored.occurred_at) > since:
            continue
        if call.where is not None and not _truthy(_value(call.where, ctx, stored.properties)):
            continue
        found.append(stored)
    return found


def _behaviour(call: Behaviour, ctx: Context) -> Any:
    found = _matching(call, ctx)
    path = (call.property or "").split(".")
    if call.function == "count":
        return len(found)
    if call.function == "sum":
        numbers = [v for v in (_lookup(e.properties, path) for e in found) if _is_number(v)]
        try:
            return sum(numbers)
        except OverflowError:  # a huge integer met a float: no meaningful total
            return _MISSING
    if not found:
        return None
    latest = max(found, key=lambda e: _aware(e.occurred_at))
    if call.function == "last":
        return _present(_lookup(latest.properties, path))
    # Clock skew can date an event after now: that is still "today".
    return max(0, (_aware(ctx.now) - _aware(latest.occurred_at)) // _DAY)
