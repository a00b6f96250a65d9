"""Event property tests (a goal's or KPI's ``where``) as SQL over ``e.properties``.

The SQL holds exactly when ``workflows.conditions.matches_properties`` would pass the decoded
event, so a report counts the events a goal with the same filter would match. Values are
always bound as parameters, never spliced into the text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Final

from journeyman.workflows.plan import PropertyTest

Bind = Callable[[object, str], str]


def where_sql(tests: Sequence[PropertyTest], bind: Bind) -> str:
    """SQL over ``e.properties`` that holds when every test passes, as
    ``workflows.conditions.matches_properties`` decides; ``bind`` adds a parameter."""
    return " AND ".join(_test_sql(test, bind) for test in tests) or "true"


_COMPARISONS: Final = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _test_sql(test: PropertyTest, bind: Bind) -> str:
    # ->> would turn a missing key and a JSON null into the same NULL: -> keeps them apart,
    # and on anything but an object gives NULL, as a lookup through a non-mapping is missing.
    value = "(e.properties" + "".join(f" -> {bind(p, 'text')}" for p in test.path.split(".")) + ")"
    if test.op == "exists":
        return f"{value} IS {'NOT ' if test.value else ''}NULL"
    if test.op in ("eq", "ne", "one_of"):
        options = [test.value] if test.op != "one_of" else test.value
        if not isinstance(options, list):
            return "false"
        equal = " OR ".join(_equals_sql(value, option, bind) for option in options) or "false"
        # Every _equals_sql is true or false, never NULL: NOT makes a missing property pass ne.
        return f"NOT ({equal})" if test.op == "ne" else f"({equal})"
    bound = test.value
    if isinstance(bound, bool) or not isinstance(bound, int | float):
        return "false"  # conditions compare numbers only
    return (
        f"(CASE WHEN jsonb_typeof({value}) = 'number'"
        f" THEN {value}::numeric {_COMPARISONS[test.op]} {bind(Decimal(repr(bound)), 'numeric')}"
        " ELSE false END)"
    )


def _equals_sql(value: str, option: object, bind: Bind) -> str:
    """``value == option`` as Python compares decoded JSON: true == 1 == 1.0, "1" != 1."""
    if option is None:
        return f"coalesce({value} = 'null'::jsonb, false)"
    if isinstance(option, str):
        return f"coalesce({value} = to_jsonb({bind(option, 'text')}), false)"
    if isinstance(option, bool):
        truth, number = ("true", "1") if option else ("false", "0")
        return (
            f"(CASE jsonb_typeof({value}) WHEN 'boolean' THEN {value}::boolean = {truth}"
            f" WHEN 'number' THEN {value}::numeric = {number} ELSE false END)"
        )
    if isinstance(option, int | float):
        bound = bind(Decimal(repr(option)), "numeric")
        return (
            f"(CASE jsonb_typeof({value}) WHEN 'number' THEN {value}::numeric = {bound}"
            f" WHEN 'boolean' THEN (CASE WHEN {value}::boolean THEN 1 ELSE 0 END) = {bound}"
            " ELSE false END)"
        )
    return "false"
