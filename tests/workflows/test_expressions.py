"""The condition language: parsing, precedence, every operator, behaviour, errors and needs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from journeyman.workflows.expressions import (
    DAYS_SINCE_METRICS,
    METRICS,
    STORED_METRICS,
    Context,
    ExpressionError,
    Needs,
    StoredEvent,
    evaluate,
    evaluate_value,
    merge_needs,
    needs,
    parse,
)
from journeyman.workflows.expressions.syntax import (
    And,
    Behaviour,
    Compare,
    Constant,
    Not,
    Or,
    Reference,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DAY = 86400

SEED = """(profile.gender == "female" and profile.age > 60
   and count("Order Completed", within: 6mo, where: category == "anti-aging") > 0)
or (profile.gender == "male" and profile.age between 20 and 29
   and count("Product Viewed", within: 30d, where: category == "anti-aging") > 0)"""


def stored(name: str, days_ago: float, **properties: Any) -> StoredEvent:
    return StoredEvent(name, properties, NOW - timedelta(days=days_ago))


def context(
    traits: Mapping[str, Any] | None = None,
    *,
    event: Mapping[str, Any] | None = None,
    history: list[StoredEvent] | None = None,
) -> Context:
    by_name: dict[str, list[StoredEvent]] = {}
    for item in history or []:
        by_name.setdefault(item.name, []).append(item)
    return Context(traits=traits or {}, event=event or {}, history=by_name, now=NOW)


def holds(source: str, traits: Mapping[str, Any] | None = None, **kwargs: Any) -> bool:
    return evaluate(parse(source), context(traits, **kwargs))


def value_of(source: str, traits: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    return evaluate_value(parse(source), context(traits, **kwargs))


# The seed example from the product brief.


ORDER, VIEW = "Order Completed", "Product Viewed"


@pytest.mark.parametrize(
    ("gender", "age", "event", "days_ago", "category", "expected"),
    [
        ("female", 61, ORDER, 150, "anti-aging", True),
        ("female", 61, ORDER, 210, "anti-aging", False),  # seven months: outside 6mo
        ("female", 61, ORDER, 179, "anti-aging", True),
        ("female", 61, ORDER, 180, "anti-aging", False),  # 6mo is 180 days, end excluded
        ("female", 61, ORDER, 10, "skincare", False),
        ("female", 60, ORDER, 10, "anti-aging", False),  # 60 is not over 60
        ("female", 70, VIEW, 1, "anti-aging", False),  # viewing is not ordering
        ("male", 25, VIEW, 10, "anti-aging", True),
        ("male", 20, VIEW, 29, "anti-aging", True),  # between is inclusive
        ("male", 29, VIEW, 0.5, "anti-aging", True),
        ("male", 25, VIEW, 31, "anti-aging", False),
        ("male", 25, VIEW, 10, "skincare", False),
        ("male", 30, VIEW, 10, "anti-aging", False),
        ("male", 19, VIEW, 10, "anti-aging", False),
        ("male", 25, ORDER, 150, "anti-aging", False),  # an order only counts for women
        (None, 25, VIEW, 10, "anti-aging", False),
        ("male", "25", VIEW, 10, "anti-aging", False),  # a string age is not a number
    ],
)
def test_seed_example(
    gender: str | None, age: object, event: str, days_ago: float, category: str, expected: bool
) -> None:
    traits = {"age": age} if gender is None else {"gender": gender, "age": age}
    history = [stored(event, days_ago, category=category)]
    assert holds(SEED, traits, history=history) is expected


def test_seed_example_without_history_does_not_match() -> None:
    assert not holds(SEED, {"gender": "female", "age": 61})


def test_seed_example_needs() -> None:
    assert needs(parse(SEED)) == Needs(
        traits=frozenset({"gender", "age"}),
        events={"Order Completed": 180 * DAY, "Product Viewed": 30 * DAY},
    )


# Precedence and structure.


def test_tree_not_binds_tighter_than_and_than_or() -> None:
    a, b, c = (Reference("profile", (name,)) for name in "abc")
    assert parse("profile.a or profile.b and not profile.c") == Or((a, And((b, Not(c)))))
    assert parse("(profile.a or profile.b) and profile.c") == And((Or((a, b)), c))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("true or false and false", True),
        ("(true or false) and false", False),
        ("not false and false", False),
        ("not (false and false)", True),
        ("not true or true", True),
        ("not not true", True),
        ("false or false or true", True),
        ("true and true and false", False),
        ("1 == 1 and 2 > 1", True),
        ("true == (1 > 0)", True),
    ],
)
def test_precedence(source: str, expected: bool) -> None:
    assert holds(source) is expected


def test_conditions_span_lines() -> None:
    assert holds("profile.a == 1\n  and\n\tprofile.b == 2", {"a": 1, "b": 2})


# Operators.


@pytest.mark.parametrize(
    ("source", "traits", "expected"),
    [
        ("profile.age == 30", {"age": 30}, True),
        ("profile.age == 30", {"age": 30.0}, True),
        ("profile.age == 30", {"age": "30"}, False),
        ("profile.age != 30", {"age": 31}, True),
        ("profile.age != 30", {"age": 30}, False),
        ("profile.age > 30", {"age": 31}, True),
        ("profile.age > 30", {"age": 30}, False),
        ("profile.age >= 30", {"age": 30}, True),
        ("profile.age >= 30", {"age": 29.9}, False),
        ("profile.age < 30", {"age": 29}, True),
        ("profile.age < 30", {"age": 30}, False),
        ("profile.age <= 30", {"age": 30}, True),
        ("profile.age <= 30", {"age": 31}, False),
        ('profile.name < "m"', {"name": "alice"}, True),
        ('profile.name > "m"', {"name": "alice"}, False),
        ('profile.plan == "pro"', {"plan": "pro"}, True),
        ("profile.vip == true", {"vip": True}, True),
        ("profile.vip == false", {"vip": True}, False),
        ("profile.vip == 1", {"vip": True}, False),  # true is not 1
        ("profile.vip != 1", {"vip": True}, True),
        ("profile.vip > 0", {"vip": True}, False),  # bool is not a number
        ("profile.score == null", {"score": None}, True),
        ('profile.tags == ["a", "b"]', {"tags": ["a", "b"]}, True),
        ('profile.tags == ["a", "b"]', {"tags": ["b", "a"]}, False),
        ("profile.a == profile.b", {"a": 2, "b": 2}, True),
        ("profile.a < profile.b", {"a": 1, "b": 2}, True),
    ],
)
def test_comparisons(source: str, traits: dict[str, Any], expected: bool) -> None:
    assert holds(source, traits) is expected


@pytest.mark.parametrize(
    ("source", "traits"),
    [
        ('profile.age > "20"', {"age": 30}),
        ("profile.age < 20", {"age": "10"}),
        ("profile.items > 3", {"items": [1, 2, 3, 4]}),
        ("profile.address > 1", {"address": {"city": "Paris"}}),
        ("profile.a.b == 1", {"a": 5}),
        ("profile.a.b == 1", {"a": [1]}),
        ("profile.age between 20 and 29", {"age": "25"}),
        ('profile.age between "a" and 29', {"age": 25}),
        ("profile.n contains 1", {"n": 10}),
        ("profile.s contains 1", {"s": "1"}),
        ("profile.n in [1, 2]", {"n": True}),
        ("profile.t == 1", {"t": float("nan")}),
    ],
)
def test_type_mismatch_is_false_not_an_error(source: str, traits: dict[str, Any]) -> None:
    assert holds(source, traits) is False


@pytest.mark.parametrize(
    ("age", "expected"),
    [(19, False), (20, True), (24.5, True), (29, True), (29.01, False), (30, False)],
)
def test_between_is_inclusive_at_both_ends(age: float, expected: bool) -> None:
    assert holds("profile.age between 20 and 29", {"age": age}) is expected


def test_between_strings_and_references() -> None:
    assert holds('profile.code between "b" and "d"', {"code": "c"})
    assert not holds('profile.code between "b" and "d"', {"code": "e"})
    assert holds("profile.x between profile.lo and profile.hi", {"x": 5, "lo": 1, "hi": 5})


@pytest.mark.parametrize(
    ("source", "traits", "expected"),
    [
        ('profile.country in ["FR", "DE"]', {"country": "FR"}, True),
        ('profile.country in ["FR", "DE"]', {"country": "US"}, False),
        ('profile.country not in ["FR", "DE"]', {"country": "US"}, True),
        ('profile.country not in ["FR", "DE"]', {"country": "DE"}, False),
        ("profile.n in [1, 2.5, -3]", {"n": -3}, True),
        ("profile.n in [1, 2.5, -3]", {"n": 2.5}, True),
        ("profile.n in [1]", {"n": "1"}, False),
        ("profile.n in [profile.m, 7]", {"n": 4, "m": 4}, True),
        ("profile.n in [null]", {"n": None}, True),
    ],
)
def test_in_and_not_in(source: str, traits: dict[str, Any], expected: bool) -> None:
    assert holds(source, traits) is expected


@pytest.mark.parametrize(
    ("source", "traits", "expected"),
    [
        ('profile.email contains "@shop."', {"email": "ann@shop.example"}, True),
        ('profile.email contains "@mail."', {"email": "ann@shop.example"}, False),
        ('profile.tags contains "vip"', {"tags": ["new", "vip"]}, True),
        ('profile.tags contains "vi"', {"tags": ["new", "vip"]}, False),
        ("profile.ids contains 3", {"ids": [1, 2, 3]}, True),
        ("profile.ids contains 1", {"ids": [True]}, False),
        ("profile.email contains profile.domain", {"email": "a@x.io", "domain": "x.io"}, True),
        ('profile.meta contains "a"', {"meta": {"a": 1}}, False),
    ],
)
def test_contains(source: str, traits: dict[str, Any], expected: bool) -> None:
    assert holds(source, traits) is expected


@pytest.mark.parametrize(
    ("traits", "is_null"),
    [({}, True), ({"phone": None}, True), ({"phone": "+33 1"}, False), ({"phone": ""}, False)],
)
def test_is_null_and_is_not_null(traits: dict[str, Any], is_null: bool) -> None:
    assert holds("profile.phone is null", traits) is is_null
    assert holds("profile.phone is not null", traits) is not is_null


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('"say \\"hi\\"\\n"', 'say "hi"\n'),
        ("'it\\'s'", "it's"),
        ("'double \" inside'", 'double " inside'),
        ('"tab\\tback\\\\slash\\/"', "tab\tback\\slash/"),
        ('"caf\\u00e9"', "café"),
        ('"\\r"', "\r"),
        ("''", ""),
    ],
)
def test_strings_with_escapes(source: str, expected: str) -> None:
    assert value_of(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [("-3", -3), ("- 2.5", -2.5), ("0", 0), ("12.75", 12.75), ("[1, -2]", [1, -2])],
)
def test_numbers(source: str, expected: object) -> None:
    found = value_of(source)
    assert found == expected
    assert type(found) is type(expected)


def test_negative_numbers_compare() -> None:
    assert holds("profile.balance < -10.5", {"balance": -11})
    assert not holds("profile.balance < -10.5", {"balance": -10})
    assert holds("profile.t between -5 and -1", {"t": -3})


def test_nested_paths() -> None:
    traits = {"address": {"city": "Paris", "geo": {"zip": "75001"}}}
    assert holds('profile.address.city == "Paris"', traits)
    assert holds('profile.address.geo.zip == "75001"', traits)
    assert not holds('profile.address.country == "FR"', traits)
    assert not holds('profile.address.city == "Paris"', {"address": "Paris"})


def test_keywords_may_follow_a_dot() -> None:
    assert holds("profile.in == 1 and event.null == 2", {"in": 1}, event={"null": 2})


def test_event_references() -> None:
    assert holds('event.cart_id == "c1"', event={"cart_id": "c1"})
    assert not holds('event.cart_id == "c1"', event={"cart_id": "c2"})
    assert not holds('event.cart_id == "c1"')
    assert holds("event.total > profile.limit", {"limit": 10}, event={"total": 12})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("profile.missing == 1", False),
        ("profile.missing == null", False),
        ("profile.missing != 1", True),
        ("profile.missing > 1", False),
        ("profile.missing <= 1", False),
        ("profile.missing between 1 and 2", False),
        ("profile.missing in [1]", False),
        ("profile.missing not in [1]", True),
        ('profile.missing contains "a"', False),
        ('"abc" contains profile.missing', False),
        ("profile.missing is null", True),
        ("profile.missing is not null", False),
        ("profile.missing", False),
        ("not profile.missing", True),
        ("profile.missing == profile.other_missing", False),
    ],
)
def test_missing_traits(source: str, expected: bool) -> None:
    assert holds(source, {"present": 1}) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (0, False),
        (2, True),
        (-0.5, True),
        ("", False),
        ("x", True),
        ([], False),
        ([0], True),
        ({}, False),
        (None, False),
    ],
)
def test_a_bare_value_holds_when_truthy(value: object, expected: bool) -> None:
    assert holds("profile.flag", {"flag": value}) is expected


def test_evaluate_value() -> None:
    assert value_of("profile.missing") is None
    assert value_of("[1, profile.missing]") == [1, None]
    assert value_of("profile.address", {"address": {"city": "Paris"}}) == {"city": "Paris"}
    assert value_of("1 < 2") is True
    assert value_of("null") is None


def test_traits_that_are_not_a_mapping_do_not_raise() -> None:
    odd = Context(traits=[1, 2], event={}, history={}, now=NOW)  # type: ignore[arg-type]
    assert evaluate(parse("profile.a is null"), odd)


# Behaviour functions.

ORDERS = [
    stored("Order Completed", 1, total=20, category="shoes"),
    stored("Order Completed", 10, total=35.5, category="anti-aging"),
    stored("Order Completed", 40, total=100, category="anti-aging"),
    stored("Order Completed", 400, total="n/a", category="anti-aging"),
    stored("Product Viewed", 2, sku="s1"),
]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('count("Order Completed")', 4),
        ('count("Order Completed", within: 30d)', 2),
        ('count("Order Completed", within: "30d")', 2),
        ('count("Order Completed", within: 40d)', 2),  # strictly after now - within
        ('count("Order Completed", within: 41d)', 3),
        ('count("Order Completed", within: 1d12h)', 1),
        ('count("Order Completed", within: 12h)', 0),
        ('count("Order Completed", within: 2mo)', 3),
        ('count("Order Completed", where: category == "anti-aging")', 3),
        ('count("Order Completed", within: 30d, where: category == "anti-aging")', 1),
        ('count("Order Completed", where: category == "anti-aging", within: 30d)', 1),
        ('count("Order Completed", where: total > 30)', 2),
        ('count("Order Completed", where: total > 30 or category == "shoes")', 3),
        ('count("Order Completed", where: coupon is null)', 4),
        ('count("Order Completed", where: coupon == "X")', 0),
        ('count("Signed Up")', 0),
        ('sum("Order Completed", "total")', 155.5),
        ('sum("Order Completed", "total", within: 30d)', 55.5),
        ('sum("Order Completed", "total", where: category == "anti-aging")', 135.5),
        ('sum("Order Completed", "total", within: 5d, where: total > 50)', 0),
        ('sum("Signed Up", "total")', 0),
        ('last("Order Completed", "category")', "shoes"),
        ('last("Order Completed", "total", where: category == "anti-aging")', 35.5),
        ('last("Order Completed", "total", within: 30d, where: total > 50)', None),
        ('last("Order Completed", "coupon")', None),
        ('last("Signed Up", "plan")', None),
        ('days_since("Order Completed")', 1),
        ('days_since("Order Completed", where: total >= 100)', 40),
        ('days_since("Product Viewed")', 2),
        ('days_since("Signed Up")', None),
    ],
)
def test_behaviour_functions(source: str, expected: object) -> None:
    history = list(reversed(ORDERS))  # any order: the functions must not rely on it
    assert value_of(source, history=history) == expected


def test_sum_reads_nested_properties_and_skips_non_numbers() -> None:
    history = [
        stored("Paid", 1, price={"amount": 3}),
        stored("Paid", 2, price={"amount": True}),
        stored("Paid", 3, price={"amount": "4"}),
        stored("Paid", 4, price=7),
        stored("Paid", 5, price={"amount": 1.5}),
    ]
    assert value_of('sum("Paid", "price.amount")', history=history) == 4.5


def test_days_since_counts_whole_days() -> None:
    history = [stored("Visit", 3.9), stored("Visit", 12)]
    assert value_of('days_since("Visit")', history=history) == 3
    assert holds('days_since("Visit") > 2', history=history)
    assert not holds('days_since("Visit") > 3', history=history)


def test_days_since_of_an_event_dated_after_now_is_zero() -> None:
    assert value_of('days_since("Visit")', history=[stored("Visit", -2)]) == 0


def test_no_matching_event_is_null_and_compares_false() -> None:
    assert holds('days_since("Visit") is null')
    assert not holds('days_since("Visit") > 30')
    assert not holds('days_since("Visit") < 30')
    assert holds('last("Visit", "page") is null')


def test_where_can_read_the_triggering_event_and_the_profile() -> None:
    history = [
        stored("Checkout Started", 1, cart_id="c1"),
        stored("Checkout Started", 2, cart_id="c2"),
    ]
    source = 'count("Checkout Started", where: cart_id == event.cart_id) == 1'
    assert holds(source, event={"cart_id": "c2"}, history=history)
    assert not holds(source, event={"cart_id": "c3"}, history=history)
    mine = 'count("Checkout Started", where: cart_id == profile.last_cart) > 0'
    assert holds(mine, {"last_cart": "c1"}, history=history)


def test_where_reads_nested_counted_properties() -> None:
    history = [stored("Viewed", 1, product={"brand": "acme"}), stored("Viewed", 2, product=None)]
    assert value_of('count("Viewed", where: product.brand == "acme")', history=history) == 1


def test_naive_event_times_are_read_as_utc() -> None:
    naive = StoredEvent("Visit", {}, (NOW - timedelta(days=2)).replace(tzinfo=None))
    ctx = Context(traits={}, event={}, history={"Visit": [naive]}, now=NOW)
    assert evaluate_value(parse('count("Visit", within: 3d)'), ctx) == 1
    assert evaluate_value(parse('days_since("Visit")'), ctx) == 2


def test_event_properties_that_are_not_a_mapping_do_not_raise() -> None:
    odd = StoredEvent("Visit", None, NOW)  # type: ignore[arg-type]
    ctx = Context(traits={}, event={}, history={"Visit": [odd]}, now=NOW)
    assert evaluate_value(parse('count("Visit", where: page == 1)'), ctx) == 0
    assert evaluate_value(parse('last("Visit", "page")'), ctx) is None


@pytest.mark.parametrize(
    ("text", "days"),
    [("6mo", 180), ("1mo", 30), ("1mo2w", 44), ('"2mo"', 60), ("2w", 14), ("3650d", 3650)],
)
def test_durations_including_months(text: str, days: int) -> None:
    call = parse(f'count("A", within: {text})')
    assert isinstance(call, Behaviour)
    assert call.within == days * DAY


def test_six_months_means_180_days() -> None:
    inside, outside = [stored("A", 179.9)], [stored("A", 180.1)]
    assert holds('count("A", within: 6mo) > 0', history=inside)
    assert not holds('count("A", within: 6mo) > 0', history=outside)


# Errors.


@pytest.mark.parametrize(
    ("source", "message", "column"),
    [
        ("", "the condition is empty", 1),
        ("   \n ", "the condition is empty", 1),
        ("profile.age > 3 @", "unexpected character '@'", 17),
        ("profile.a = 1", "write == to compare", 11),
        ("profile.a == 1 && profile.b", "write and", 16),
        ('profile.name == "abc', "unterminated string", 17),
        ("profile.name == 'abc\" and true", "unterminated string", 17),
        ('profile.name == "a\\qb"', "unknown escape \\q", 19),
        ('profile.name == "\\u12"', "\\u must be followed", 18),
        (
            "age > 3",
            "unknown name 'age': write profile.age for a trait or event.age for a property of"
            " the triggering event",
            1,
        ),
        ("profile.a == 1 and plan", "unknown name 'plan'", 20),
        ("profile.a == TRUE", "unknown name 'TRUE'", 14),
        ('profile.a == 1 and avg("X") > 1', "unknown function 'avg'", 20),
        ("count() > 1", "count takes the event name", 7),
        ('count("A", "b") > 1', "count takes the event name", 12),
        ("count(Order) > 1", "count takes the event name", 7),
        ('sum("A") > 1', "sum takes the event name and a property name", 8),
        ('last("A", 3)', "last takes the event name and a property name", 11),
        ('days_since("A", within: 30d)', "within: is not an argument of days_since", 17),
        ('count("A", since: 30d)', "since: is not an argument of count", 12),
        ('count("A", within: 1d, within: 2d)', "within: is given twice", 24),
        ('count("") > 0', "the event name must not be empty", 7),
        ('count("A" > 0', "expected ',' or ')', got '>'", 11),
        ('count("A", within: 30) > 0', "within: expects a duration with a unit", 20),
        ('count("A", within: 5x) > 0', "within: expects a duration from 1s to 3650d", 20),
        ('count("A", within: 0d) > 0', "within: expects a duration from 1s", 20),
        ('count("A", within: 3651d) > 0', "within: expects a duration from 1s to 3650d", 20),
        ('count("A", within: 122mo) > 0', "within: expects a duration", 20),
        ('count("A", where: count("B") > 0) > 0', "count cannot be used inside where:", 19),
        ("(profile.a == 1", "expected ')', got the end of the condition", 16),
        ("(profile.a == 1 profile.b", "expected ')', got 'profile'", 17),
        ("profile.a == 1)", "unexpected ')' after a complete condition", 15),
        ("profile.a == 1 profile.b == 2", "unexpected 'profile' after a complete condition", 16),
        ("profile.a == 1 AND profile.b == 2", "keywords are lowercase: and", 16),
        ("profile.a < 2 < 3", "comparisons cannot be chained", 15),
        ("profile.a == 1 is null", "comparisons cannot be chained", 16),
        ('profile.a in "x"', 'expected a list like ["a", "b"] after in', 14),
        ("profile.a not in 1", "after not in", 18),
        ("profile.a in []", "expected a value, got ']'", 15),
        ("profile.a in [1 2]", "expected ',' or ']'", 17),
        ("profile.a between 1 2", "expected and between the two bounds", 21),
        ("profile.a is 1", "expected null after is", 14),
        ("profile.a is not true", "expected null after is not", 18),
        ("profile == 1", "expected '.' and a trait name after profile", 9),
        ("event", "expected '.' and a property name after event", 6),
        ("profile.", "expected a name after '.'", 9),
        ("profile.a == -x", "expected a number after '-'", 15),
        ("profile.age > 30d", "a duration like 30d is only allowed after within:", 15),
        ("profile.a ==", "expected a value, got the end of the condition", 13),
        ("and true", "expected a value, got 'and'", 1),
        ("9" * 5000, "the number is too long", 1),
        ("9" * 400 + ".5 > 1", "the number is too large", 1),
    ],
)
def test_errors_name_the_column(source: str, message: str, column: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(source)
    assert message in caught.value.message
    assert caught.value.position == column - 1
    assert str(caught.value) == f"{caught.value.message} at column {column}"


def test_errors_on_later_lines_name_line_and_column() -> None:
    with pytest.raises(ExpressionError) as caught:
        parse("profile.a == 1\n  and @")
    assert caught.value.position == 21
    assert str(caught.value) == "unexpected character '@' at line 2, column 7"


def test_expression_error_is_a_value_error() -> None:
    assert issubclass(ExpressionError, ValueError)


def test_nesting_up_to_64_levels_parses() -> None:
    assert holds("(" * 64 + "true" + ")" * 64)
    assert holds("not " * 64 + "true")  # 64 negations of true
    assert holds("[" * 64 + "1" + "]" * 64)


@pytest.mark.parametrize(
    ("source", "column"),
    [
        ("(" * 65 + "true" + ")" * 65, 65),
        ("not " * 65 + "true", 257),
        ("[" * 65 + "1" + "]" * 65, 65),
        ("(" * 4000 + "true" + ")" * 4000, 65),  # far past Python's recursion limit
        ('count("A", where: ' + "(" * 64 + "x" + ")" * 64 + ")", 82),
    ],
)
def test_deeper_nesting_is_a_clean_error(source: str, column: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(source)
    assert caught.value.message == "the condition nests deeper than 64 levels"
    assert caught.value.position == column - 1


def test_sources_longer_than_10000_characters_are_rejected() -> None:
    longest = " or ".join(["true"] * 1250) + " " * (10_000 - 1250 * 8 + 4)
    assert len(longest) == 10_000
    assert holds(longest)
    with pytest.raises(ExpressionError) as caught:
        parse(longest + " ")
    assert caught.value.message == "a condition must be at most 10000 characters"


# needs().


def test_needs_lists_trait_paths_and_the_longest_window_per_event() -> None:
    source = """
        profile.age > 30 and profile.address.city == event.city
        and count("Order Completed", within: 30d, where: total > profile.min_total) > 0
        and sum("Order Completed", "total", within: 6mo) > 100
        and last("Plan Changed", "plan", within: 2d) == "pro"
        and count("Plan Changed", within: 12h) > 0
        and days_since("Signed Up") > 7
        and count("Visited", within: 1d) > 0 and count("Visited") > 3
    """
    assert needs(parse(source)) == Needs(
        traits=frozenset({"age", "address.city", "min_total"}),
        events={
            "Order Completed": 180 * DAY,
            "Plan Changed": 2 * DAY,
            "Signed Up": None,
            "Visited": None,
        },
    )


def test_needs_without_behaviour_or_traits_is_empty() -> None:
    assert needs(parse('event.plan == "pro"')) == Needs(traits=frozenset(), events={})


def test_parse_builds_frozen_dataclasses() -> None:
    tree = parse('count("A", within: 1d, where: n == 1) >= 2')
    assert tree == Compare(
        ">=",
        Behaviour(
            "count", "A", None, DAY, Compare("==", Reference("counted", ("n",)), Constant(1))
        ),
        Constant(2),
    )
    with pytest.raises(AttributeError):
        tree.op = "<"  # type: ignore[misc]


def test_merge_needs_joins_traits_and_keeps_the_longest_window() -> None:
    cases = [
        'profile.age > 30 and count("A", within: 1d) > 0 and count("B") > 0',
        'profile.plan == "pro" and count("A", within: 3d) > 0 and count("C", within: 2d) > 0',
        'count("B", within: 1w) > 0',
    ]
    assert merge_needs(needs(parse(case)) for case in cases) == Needs(
        traits=frozenset({"age", "plan"}),
        events={"A": 3 * DAY, "B": None, "C": 2 * DAY},
    )
    assert merge_needs([]) == Needs(traits=frozenset(), events={})


# metrics.NAME: the customer's behavioural metrics.

VIP_METRICS: dict[str, Any] = {
    "frequency": "vip",
    "recency": "inactive",
    "order_count": 4,
    "revenue_total": 1280.0,
    "average_order_value": 320.0,
    "first_order_at": "2024-12-01T12:00:00+00:00",
    "last_order_at": "2025-05-02T12:00:00+00:00",  # 30 days before NOW
    "top_categories": ["anti-aging", "serums"],
    "top_products": ["cream-1"],
    "last_seen_at": "2025-05-31T23:00:00+00:00",  # 13 hours before NOW
    "preferred_channel": "live chat",
    "preferred_device": "mobile",
    "last_channel": "email",
    "last_device": "desktop",
    "last_satisfaction": 9.0,
    "last_satisfaction_at": "2025-05-20T12:00:00+00:00",
}


def with_metrics(source: str, metrics: Mapping[str, Any] = VIP_METRICS) -> Any:
    ctx = Context(traits={}, event={}, history={}, now=NOW, metrics=metrics)
    return evaluate_value(parse(source), ctx)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('metrics.frequency == "vip"', True),
        ('metrics.frequency in ["loyal", "vip"]', True),
        ('metrics.recency == "inactive"', True),
        ('metrics.recency == "active"', False),
        ("metrics.order_count >= 3", True),
        ("metrics.order_count >= 5", False),
        ("metrics.revenue_total > 1000", True),
        ("metrics.average_order_value between 300 and 400", True),
        ('metrics.top_categories contains "anti-aging"', True),
        ('metrics.top_categories contains "perfume"', False),
        ('metrics.top_products contains "cream-1"', True),
        ("metrics.last_satisfaction <= 6", False),
        ("metrics.days_since_last_order == 30", True),
        ("metrics.days_since_last_order > 30", False),
        ("metrics.days_since_last_seen == 0", True),  # 13 hours: today
        ("metrics.days_since_first_order == 182", True),
        ('metrics.preferred_channel == "live chat"', True),
        ('metrics.preferred_device == "mobile" and metrics.last_device == "desktop"', True),
        ('metrics.last_channel == "email"', True),
        ('metrics.first_order_at < "2025-01-01"', True),  # ISO text compares in time order
        ('metrics.last_satisfaction_at >= "2025-05-20"', True),
    ],
)
def test_metrics_references(source: str, expected: bool) -> None:
    assert bool(with_metrics(source)) is expected


def test_the_seed_audience_with_a_regular_buyer_on_live_chat() -> None:
    source = (
        'metrics.frequency in ["regular", "loyal", "vip"] and metrics.preferred_channel =='
        ' "live chat" and metrics.top_categories contains "anti-aging"'
    )
    assert with_metrics(source) is True
    assert with_metrics(source, {**VIP_METRICS, "frequency": "sporadic"}) is False


def test_metrics_values_read_back() -> None:
    assert with_metrics("metrics.order_count") == 4
    assert with_metrics("metrics.top_categories") == ["anti-aging", "serums"]
    assert with_metrics("metrics.days_since_last_order") == 30


def test_a_customer_without_orders_or_activity() -> None:
    never = {**VIP_METRICS, "order_count": 0, "last_order_at": None, "first_order_at": None}
    never.update(average_order_value=None, recency=None, last_seen_at=None)
    assert with_metrics("metrics.days_since_last_order is null", never) is True
    assert with_metrics("metrics.days_since_last_order > 30", never) is False
    assert with_metrics("metrics.average_order_value > 0", never) is False
    assert with_metrics("metrics.recency is null", never) is True
    assert with_metrics('metrics.recency != "active"', never) is True


def test_metrics_not_loaded_are_missing() -> None:
    # A context built without metrics (a caller that did not load them) decides nothing.
    assert holds('metrics.frequency == "vip"') is False
    assert holds('metrics.frequency != "vip"') is True
    assert holds("metrics.days_since_last_seen is null") is True
    assert value_of("metrics.days_since_last_seen") is None


def test_days_since_a_time_in_the_future_is_zero() -> None:
    ahead = {**VIP_METRICS, "last_order_at": "2025-06-03T00:00:00+00:00"}
    assert with_metrics("metrics.days_since_last_order", ahead) == 0
    odd = {**VIP_METRICS, "last_order_at": "yesterday"}
    assert with_metrics("metrics.days_since_last_order", odd) is None
    moment = {**VIP_METRICS, "last_order_at": datetime(2025, 5, 22, 12, tzinfo=UTC)}
    assert with_metrics("metrics.days_since_last_order", moment) == 10


def test_metrics_inside_where() -> None:
    history = [stored("Order Completed", 1, total=400), stored("Order Completed", 2, total=100)]
    ctx = Context(
        traits={}, event={}, history={"Order Completed": history}, now=NOW, metrics=VIP_METRICS
    )
    tree = parse('count("Order Completed", where: total > metrics.average_order_value) == 1')
    assert evaluate(tree, ctx)


def test_metrics_parse_to_references() -> None:
    assert parse("metrics.order_count") == Reference("metrics", ("order_count",))


def test_unknown_metric_names_the_known_ones() -> None:
    with pytest.raises(ExpressionError) as caught:
        parse("metrics.orders > 3")
    assert caught.value.position == len("metrics.")
    assert caught.value.message == (
        "unknown metric 'orders'; the metrics are " + ", ".join(METRICS)
    )
    for name in ("frequency", "order_count", "days_since_last_order", "top_categories"):
        assert name in caught.value.message


@pytest.mark.parametrize(
    ("source", "message", "column"),
    [
        ("metrics == 1", "expected '.' and a metric name after metrics", 9),
        ("metrics.", "expected a metric name after 'metrics.', got the end of the condition", 9),
        ('metrics."frequency"', "expected a metric name after 'metrics.', got '\"frequency\"'", 9),
        ("metrics.order_count.total > 1", "metrics.order_count has no fields", 20),
        ("metrics.Frequency", "unknown metric 'Frequency'", 9),
    ],
)
def test_metrics_errors(source: str, message: str, column: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(source)
    assert message in caught.value.message
    assert caught.value.position == column - 1


def test_needs_lists_the_metrics_read() -> None:
    source = (
        'metrics.frequency == "vip" or (profile.age > 60 and metrics.days_since_last_order > 30'
        ' and count("A", where: total > metrics.average_order_value) > 0)'
    )
    assert needs(parse(source)) == Needs(
        traits=frozenset({"age"}),
        events={"A": None},
        metrics=frozenset({"frequency", "days_since_last_order", "average_order_value"}),
    )
    assert needs(parse("profile.age > 1")).metrics == frozenset()
    assert merge_needs(
        [needs(parse('metrics.recency == "lost"')), needs(parse("metrics.order_count > 1"))]
    ).metrics == frozenset({"recency", "order_count"})


def test_every_metric_parses_and_the_derived_ones_name_a_stored_time() -> None:
    assert (*STORED_METRICS, *DAYS_SINCE_METRICS) == METRICS
    for name in METRICS:
        assert needs(parse(f"metrics.{name} is null")).metrics == {name}
    assert set(DAYS_SINCE_METRICS.values()) <= set(STORED_METRICS)
