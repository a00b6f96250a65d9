"""Evaluate event matches: a small, parsed condition language, never ``eval``.

Pure functions, safe inside the workflow sandbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .plan import EventMatch, PropertyTest

_MISSING = object()
MISSING = _MISSING  # what ``lookup`` returns for a path that is not there


def lookup(properties: Mapping[str, Any], path: str) -> Any:
    """Follow a dotted path into nested mappings; a missing key gives ``_MISSING``."""
    value: Any = properties
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def test_property(test: PropertyTest, value: Any) -> bool:
    """True when ``value`` (or ``_MISSING``) passes ``test``."""
    if test.op == "exists":
        return (value is not _MISSING) == bool(test.value)
    if value is _MISSING:
        return test.op == "ne"
    if test.op == "eq":
        return bool(value == test.value)
    if test.op == "ne":
        return bool(value != test.value)
    if test.op == "one_of":
        return isinstance(test.value, list) and value in test.value
    number, bound = _number(value), _number(test.value)
    if number is None or bound is None:
        return False
    if test.op == "gt":
        return number > bound
    if test.op == "gte":
        return number >= bound
    if test.op == "lt":
        return number < bound
    return number <= bound  # lte


def matches(match: EventMatch, event: str, properties: Mapping[str, Any]) -> bool:
    """True when an event has the match's name and passes every property test."""
    return event == match.event and matches_properties(match, properties)


def matches_properties(match: EventMatch, properties: Mapping[str, Any]) -> bool:
    """True when the properties pass every test of the match (the name is not checked)."""
    return all(test_property(t, lookup(properties, t.path)) for t in match.where)
