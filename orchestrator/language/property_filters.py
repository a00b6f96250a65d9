"""Property filters as written (``where``): plain values, operators and their operands.

A filter's value is a plain value (equals) or ``{operator: value}`` pairs that must all hold;
each becomes a ``Condition`` the compiler turns into the plan's property tests. Trait values
(``update: set``) are plain values too, checked here the same way.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, NamedTuple

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from journeyman.workflows.plan import Operator, Scalar

from .field_schemas import _scalar_json
from .fields import fail

OPERATORS: tuple[Operator, ...] = ("eq", "ne", "gt", "gte", "lt", "lte", "one_of", "exists")


class Condition(NamedTuple):
    """One property test as written: an operator and its operand."""

    op: Operator
    value: Scalar | list[Scalar]


def _scalar(value: object, what: str) -> Scalar:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            fail(f"{what} must be a finite number")
        return value
    if isinstance(value, list | dict):
        fail(f"{what} must be a single value; to match any of several, use {{one_of: [...]}}")
    # YAML turns unquoted dates and times into objects an event property can never equal.
    fail(f"{what} must be a string, number, boolean or null; quote {value!s} to use it as text")


def _number(value: object, op: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        fail(f"'{op}' compares with a number; got {value!r}")
    return value


def _conditions(raw: object) -> tuple[Condition, ...]:
    """A value (``eq``), or ``{operator: value}`` pairs that must all hold, like a range."""
    if not isinstance(raw, dict):
        return (Condition("eq", _scalar(raw, "a property value")),)
    if not raw:
        fail("a condition is a value or {operator: value} pairs, e.g. {gte: 10, lt: 20}")
    return tuple(_condition(op, operand) for op, operand in raw.items())


def _condition(op: object, operand: object) -> Condition:
    if op not in OPERATORS:
        fail(f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
    if op in ("eq", "ne"):
        return Condition(op, _scalar(operand, f"the '{op}' operand"))
    if op == "one_of":
        if not isinstance(operand, list) or not operand:
            fail("'one_of' takes a non-empty list of values")
        return Condition(op, [_scalar(item, "each 'one_of' item") for item in operand])
    if op == "exists":
        if not isinstance(operand, bool):
            fail(f"'exists' takes true or false; got {operand!r}")
        return Condition(op, operand)
    return Condition(op, _number(operand, op))


# Written back as a file has it: a lone equality as the plain value.
def _written_conditions(conditions: tuple[Condition, ...]) -> Any:
    if len(conditions) == 1 and conditions[0].op == "eq":
        return conditions[0].value
    return {condition.op: condition.value for condition in conditions}


def _trait_value(value: object) -> Scalar:
    if isinstance(value, list | dict):
        fail("a trait value is a string, number, boolean or null; got a list or mapping")
    return _scalar(value, "a trait value")


def _condition_json() -> dict[str, Any]:
    number = {"type": "number"}
    operators: dict[str, Any] = {
        "eq": _scalar_json(),
        "ne": _scalar_json(),
        "gt": number,
        "gte": number,
        "lt": number,
        "lte": number,
        "one_of": {"type": "array", "minItems": 1, "items": _scalar_json()},
        "exists": {"type": "boolean"},
    }
    assert set(operators) == set(OPERATORS)
    mapping = {
        "type": "object",
        "properties": operators,
        "additionalProperties": False,
        "minProperties": 1,
    }
    return {"anyOf": [_scalar_json(), mapping]}


ConditionSpec = Annotated[
    tuple[Condition, ...],
    PlainValidator(_conditions),
    WithJsonSchema(_condition_json()),
    PlainSerializer(_written_conditions, when_used="json"),
]
