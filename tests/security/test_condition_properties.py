"""Property tests of the condition language (docs/conditions.md), over generated trees and data.

- Every tree the grammar can express, written out as text by ``show`` (a printer kept here,
  with as few parentheses as the precedence rules allow), parses back to the same tree.
- Evaluating any tree against any context of JSON values returns a bool and never raises:
  a branch must always be able to decide.
- Each operator behaves as the table in docs/conditions.md says, checked against a model of
  that table for arbitrary JSON values, missing ones included.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyman.orchestrator.language import format_duration
from journeyman.workflows.expressions import (
    METRICS,
    Context,
    StoredEvent,
    evaluate,
    evaluate_value,
    parse,
)
from journeyman.workflows.expressions.syntax import (
    FUNCTIONS,
    KEYWORDS,
    And,
    Behaviour,
    Between,
    Compare,
    Constant,
    Contains,
    Expression,
    Function,
    In,
    IsNull,
    ListOf,
    Not,
    Or,
    Reference,
)

PROPERTIES = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same examples on every run, so CI is reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
EVENTS = ["Order Completed", "Product Viewed", "A"]

# --- the printer ------------------------------------------------------------------------------

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
ATOMS = (Constant, ListOf, Reference, Behaviour)
COMPARISONS = (Compare, In, Between, Contains, IsNull)


def show_string(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def show_number(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    # The language has no exponent: write the shortest round-tripping digits in full.
    text = format(Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"


def show_constant(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return show_number(value)
    assert isinstance(value, str)
    return show_string(value)


def show_value(expr: Expression, sep: str) -> str:
    """An operand of a comparison or a list item: atoms bare, anything else in parentheses."""
    return show(expr, sep) if isinstance(expr, ATOMS) else f"({show(expr, sep)})"


def show(expr: Expression, sep: str = " ") -> str:
    """The text of ``expr``, with only the parentheses that precedence needs; ``sep`` goes
    between words (any whitespace, newlines included, must do)."""

    def value(operand: Expression) -> str:
        return show_value(operand, sep)

    def words(*parts: str) -> str:
        return sep.join(parts)

    match expr:
        case Constant(value=constant):
            return show_constant(constant)
        case ListOf(items):
            return "[" + f",{sep}".join(value(item) for item in items) + "]"
        case Reference("counted", path):
            return ".".join(path)
        case Reference(scope, path):
            return ".".join((scope, *path))
        case Behaviour(function, event, prop, within, where):
            args = [show_string(event)]
            if prop is not None:
                args.append(show_string(prop))
            if within is not None:
                args.append(words("within:", format_duration(within)))
            if where is not None:
                args.append(words("where:", show(where, sep)))
            return f"{function}({f',{sep}'.join(args)})"
        case Compare(op, left, right):
            return words(value(left), op, value(right))
        case In(subject, options, negated):
            keyword = words("not", "in") if negated else "in"
            return words(value(subject), keyword, show(options, sep))
        case Between(subject, low, high):
            return words(value(subject), "between", value(low), "and", value(high))
        case Contains(container, item):
            return words(value(container), "contains", value(item))
        case IsNull(subject, negated):
            return words(value(subject), "is", *(["not"] if negated else []), "null")
        case Not(operand):
            inner = show(operand, sep)
            return words("not", f"({inner})" if isinstance(operand, And | Or) else inner)
        case And(operands):
            return words(
                *(
                    part
                    for i, o in enumerate(operands)
                    for part in (
                        (["and"] if i else [])
                        + [f"({show(o, sep)})" if isinstance(o, And | Or) else show(o, sep)]
                    )
                )
            )
        case Or(operands):
            return words(
                *(
                    part
                    for i, o in enumerate(operands)
                    for part in (
                        (["or"] if i else [])
                        + [f"({show(o, sep)})" if isinstance(o, Or) else show(o, sep)]
                    )
                )
            )
    raise AssertionError(f"not an expression: {expr!r}")


# Trees are costly to draw: fewer of them, each exercising many rules at once.
TREES = settings(PROPERTIES, max_examples=100)

# --- trees ------------------------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
# A counted property's first name must not read as a keyword or another reference.
heads = names.filter(lambda n: n not in KEYWORDS and n not in ("profile", "event", "metrics"))
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
)
constants = st.builds(Constant, st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=12)))


def references(*, counted: bool) -> st.SearchStrategy[Reference]:
    dotted = st.lists(names, min_size=1, max_size=3).map(tuple)
    options = [
        st.builds(Reference, st.sampled_from(["profile", "event"]), dotted),
        st.builds(Reference, st.just("metrics"), st.sampled_from(METRICS).map(lambda m: (m,))),
    ]
    if counted:
        paths = st.tuples(heads, st.lists(names, max_size=2)).map(lambda p: (p[0], *p[1]))
        options.append(st.builds(Reference, st.just("counted"), paths))
    return st.one_of(options)


def trees(*, in_where: bool) -> st.SearchStrategy[Expression]:
    """Conditions as the parser builds them (``in_where``: the body of a where:)."""
    leaves: list[st.SearchStrategy[Any]] = [constants, references(counted=in_where)]
    if not in_where:
        leaves.append(behaviours())
    base = st.one_of(leaves)

    def grow(inner: st.SearchStrategy[Expression]) -> st.SearchStrategy[Expression]:
        lists = st.lists(inner, min_size=1, max_size=3).map(lambda items: ListOf(tuple(items)))
        ops = st.sampled_from(["==", "!=", ">=", "<=", ">", "<"])
        return st.one_of(
            lists,
            st.builds(Compare, ops, inner, inner),
            st.builds(In, inner, lists, st.booleans()),
            st.builds(Between, inner, inner, inner),
            st.builds(Contains, inner, inner),
            st.builds(IsNull, inner, st.booleans()),
            st.builds(Not, inner),
            st.lists(inner, min_size=2, max_size=3).map(lambda ops: And(tuple(ops))),
            st.lists(inner, min_size=2, max_size=3).map(lambda ops: Or(tuple(ops))),
        )

    return st.recursive(base, grow, max_leaves=8)


@st.composite
def behaviours(draw: st.DrawFn) -> Behaviour:
    function: Function = draw(st.sampled_from(FUNCTIONS))
    event = draw(st.one_of(st.sampled_from(EVENTS), st.text(min_size=1, max_size=10)))
    prop = draw(st.text(min_size=1, max_size=8)) if function in ("sum", "last") else None
    within = None
    if function != "days_since":
        within = draw(st.none() | st.integers(min_value=1, max_value=3650 * 86400))
    where = draw(st.none() | trees(in_where=True))
    return Behaviour(function, event, prop, within, where)


conditions = trees(in_where=False)

# --- contexts of JSON values --------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    st.sampled_from(["2025-01-01", "2025-05-30T08:00:00+00:00", "0001-01-01T00:00:00+14:00"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)
# Objects keyed by names the generated references use, so paths often lead somewhere.
json_objects = st.dictionaries(st.one_of(names, st.text(max_size=4)), json_values, max_size=5)
moments = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12))]
        ),
    ),
)
stored_events = st.builds(
    StoredEvent,
    st.sampled_from(EVENTS),
    st.one_of(json_objects, json_values),  # properties that are not a mapping, too
    moments,
)
contexts = st.builds(
    Context,
    traits=json_objects,
    event=json_objects,
    history=st.lists(stored_events, max_size=4).map(
        lambda found: {name: [e for e in found if e.name == name] for name in EVENTS}
    ),
    now=st.just(NOW),
    metrics=st.dictionaries(st.sampled_from(METRICS), json_values, max_size=4),
)


# --- properties -----------------------------------------------------------------------------------


@TREES
@given(conditions)
def test_parse_reads_back_every_printed_tree(tree: Expression) -> None:
    text = show(tree)
    assert parse(text) == tree, text


@TREES
@given(conditions, st.sampled_from(["\n", "\n  ", "\t", " \r\n "]))
def test_newlines_between_words_are_spaces(tree: Expression, sep: str) -> None:
    # docs/conditions.md: a condition may span lines; newlines are spaces.
    text = show(tree, sep)
    assert parse(text) == tree, text


@TREES
@given(conditions, contexts)
def test_evaluation_never_raises_on_json_data(tree: Expression, context: Context) -> None:
    assert isinstance(evaluate(tree, context), bool)
    value = evaluate_value(tree, context)
    json.dumps(value, default=str)  # a plain value, whatever it is


@pytest.mark.parametrize(
    "source",
    [
        'profile.gender == "female" and profile.age > 60 and count("Order Completed",'
        ' within: 6mo, where: category == "anti-aging") > 0',
        'metrics.frequency in ["loyal", "vip"] and metrics.recency == "inactive"',
        'metrics.top_categories contains "anti-aging"',
        'days_since("Order Completed") > 30 or days_since("Order Completed") is null',
        'count("Checkout Started", where: cart_id == event.cart_id)',
        "not profile.vip or profile.age between 20 and 29",
    ],
)
def test_the_documented_examples_print_and_parse_back(source: str) -> None:
    tree = parse(source)
    assert parse(show(tree)) == tree


# --- the documented semantics, as a model ---------------------------------------------------------

MISSING = object()


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def model_equal(a: object, b: object) -> bool:
    """docs/conditions.md: ``1 == 1.0``, but ``true`` is not ``1`` and ``"1"`` is not ``1``."""
    if a is MISSING or b is MISSING:
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if is_number(a) and is_number(b):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(model_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(model_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def model_order(op: str, a: object, b: object) -> bool:
    """Both numbers or both strings, compared as such; anything else is false."""
    if is_number(a) and is_number(b):
        assert isinstance(a, int | float) and isinstance(b, int | float)
        return ordered(op, Decimal(a), Decimal(b))  # exactly, as Python compares int and float
    if isinstance(a, str) and isinstance(b, str):
        return ordered(op, a, b)
    return False


def ordered(op: str, left: Any, right: Any) -> bool:
    return bool(
        {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[op]
    )


def model_truthy(value: object) -> bool:
    if value is MISSING or value is None:
        return False
    if isinstance(value, bool):
        return value
    if is_number(value):
        return value != 0
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def traits_of(**values: object) -> dict[str, object]:
    return {name: value for name, value in values.items() if value is not MISSING}


def holds(source: str, **values: object) -> bool:
    context = Context(traits=traits_of(**values), event={}, history={}, now=NOW)
    return evaluate(parse(source), context)


maybe_missing = st.one_of(st.just(MISSING), json_values)
ORDERINGS = [">", ">=", "<", "<="]


@PROPERTIES
@given(maybe_missing, maybe_missing)
def test_equality_as_documented(a: object, b: object) -> None:
    equal = model_equal(a, b)
    assert holds("profile.a == profile.b", a=a, b=b) is equal
    # A missing value is unequal to everything, so != holds for it.
    assert holds("profile.a != profile.b", a=a, b=b) is (not equal)


@PROPERTIES
@given(st.sampled_from(ORDERINGS), maybe_missing, maybe_missing)
def test_ordering_needs_two_numbers_or_two_strings(op: str, a: object, b: object) -> None:
    assert holds(f"profile.a {op} profile.b", a=a, b=b) is model_order(op, a, b)


@PROPERTIES
@given(maybe_missing, maybe_missing, maybe_missing)
def test_between_includes_both_ends(a: object, low: object, high: object) -> None:
    expected = model_order(">=", a, low) and model_order("<=", a, high)
    assert holds("profile.a between profile.lo and profile.hi", a=a, lo=low, hi=high) is expected


@PROPERTIES
@given(maybe_missing, st.lists(json_values, min_size=1, max_size=4))
def test_in_and_not_in(a: object, options: list[object]) -> None:
    written = ", ".join(f"profile.o{i}" for i in range(len(options)))
    values = {f"o{i}": option for i, option in enumerate(options)}
    found = a is not MISSING and any(model_equal(a, option) for option in options)
    assert holds(f"profile.a in [{written}]", a=a, **values) is found
    # A missing value is in no list, so not in holds for it.
    assert holds(f"profile.a not in [{written}]", a=a, **values) is (not found)


@PROPERTIES
@given(maybe_missing, maybe_missing)
def test_contains(container: object, item: object) -> None:
    if isinstance(container, str):
        expected = isinstance(item, str) and item in container
    elif isinstance(container, list):
        expected = any(model_equal(element, item) for element in container)
    else:
        expected = False
    assert holds("profile.a contains profile.b", a=container, b=item) is expected


@PROPERTIES
@given(maybe_missing)
def test_is_null_means_missing_or_null(a: object) -> None:
    null = a is MISSING or a is None
    assert holds("profile.a is null", a=a) is null
    assert holds("profile.a is not null", a=a) is (not null)
    # Only a stored null equals null.
    assert holds("profile.a == null", a=a) is (a is None)


@PROPERTIES
@given(maybe_missing)
def test_a_bare_value_holds_when_truthy(a: object) -> None:
    assert holds("profile.a", a=a) is model_truthy(a)


@PROPERTIES
@given(maybe_missing, maybe_missing, maybe_missing)
def test_not_and_or_are_boolean_logic(a: object, b: object, c: object) -> None:
    ta, tb, tc = model_truthy(a), model_truthy(b), model_truthy(c)
    assert holds("not profile.a", a=a) is (not ta)
    assert holds("profile.a and profile.b or profile.c", a=a, b=b, c=c) is ((ta and tb) or tc)
    # not binds tightest, then and, then or.
    assert holds("profile.a or profile.b and not profile.c", a=a, b=b, c=c) is (
        ta or (tb and not tc)
    )
    assert holds("not (profile.a or profile.b)", a=a, b=b) is holds(
        "not profile.a and not profile.b", a=a, b=b
    )
