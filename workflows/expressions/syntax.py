"""Condition syntax: a hand-written tokenizer and recursive-descent parser, never ``eval``.

Loosest binding first::

    condition := or
    or        := and ("or" and)*
    and       := not ("and" not)*
    not       := "not" not | compare
    compare   := value [ ("=="|"!="|">"|">="|"<"|"<=") value | ["not"] "in" list
                       | "between" value "and" value | "contains" value | "is" ["not"] "null" ]
    value     := number | string | true | false | null | list | reference | call
               | "(" condition ")" | "-" number
    reference := ("profile" | "event") ("." name)+ | "metrics" "." metric
               | name ("." name)*                       (inside where: only)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, cast

MAX_SOURCE_CHARS = 10_000
# Bounds the parser's recursion (and the evaluator's) far below Python's recursion limit.
MAX_DEPTH = 64
MONTH_SECONDS = 30 * 86400

FUNCTIONS = ("count", "sum", "last", "days_since")
KEYWORDS = frozenset(
    {"and", "or", "not", "in", "between", "contains", "is", "null", "true", "false"}
)
COMPARE_OPS = ("==", "!=", ">=", "<=", ">", "<")

# The behavioural metrics a condition reads as ``metrics.NAME``: kept per customer as events
# arrive (orchestrator/customers/metrics.py gives the values). Times are ISO-8601 text in UTC.
STORED_METRICS: Final = (
    "frequency",
    "recency",
    "order_count",
    "revenue_total",
    "average_order_value",
    "first_order_at",
    "last_order_at",
    "top_categories",
    "top_products",
    "last_seen_at",
    "preferred_channel",
    "preferred_device",
    "last_channel",
    "last_device",
    "last_satisfaction",
    "last_satisfaction_at",
)
# Whole days since a stored time, counted at evaluation (like ``days_since``): time passing
# changes them without any event.
DAYS_SINCE_METRICS: Final = {
    "days_since_first_order": "first_order_at",
    "days_since_last_order": "last_order_at",
    "days_since_last_seen": "last_seen_at",
}
METRICS: Final = (*STORED_METRICS, *DAYS_SINCE_METRICS)


class ExpressionError(ValueError):
    """A condition that does not parse; ``position`` is the 0-based offset of the problem."""

    def __init__(self, message: str, position: int, source: str = "") -> None:
        self.message = message
        self.position = position
        before = source[:position]
        self.line = before.count("\n") + 1
        self.column = position - (before.rfind("\n") + 1) + 1
        place = f"line {self.line}, column {self.column}" if self.line > 1 else ""
        super().__init__(f"{message} at {place or f'column {self.column}'}")


@dataclass(frozen=True)
class Constant:
    value: str | int | float | bool | None


@dataclass(frozen=True)
class ListOf:
    items: tuple[Expression, ...]


Scope = Literal["profile", "event", "counted", "metrics"]


@dataclass(frozen=True)
class Reference:
    """``profile`` traits, the triggering ``event``, the customer's behavioural ``metrics``
    (``path`` is one of ``METRICS``), or (inside ``where:``) the counted event."""

    scope: Scope
    path: tuple[str, ...]


Function = Literal["count", "sum", "last", "days_since"]


@dataclass(frozen=True)
class Behaviour:
    function: Function
    event: str
    property: str | None = None  # dotted path, for sum and last
    within: int | None = None  # seconds; None looks at all of the customer's history
    where: Expression | None = None


@dataclass(frozen=True)
class Compare:
    op: Literal["==", "!=", ">=", "<=", ">", "<"]
    left: Expression
    right: Expression


@dataclass(frozen=True)
class In:
    value: Expression
    options: ListOf
    negated: bool = False


@dataclass(frozen=True)
class Between:
    value: Expression
    low: Expression
    high: Expression


@dataclass(frozen=True)
class Contains:
    container: Expression
    item: Expression


@dataclass(frozen=True)
class IsNull:
    value: Expression
    negated: bool = False


@dataclass(frozen=True)
class Not:
    operand: Expression


@dataclass(frozen=True)
class And:
    operands: tuple[Expression, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Expression, ...]


Expression: TypeAlias = (
    Constant
    | ListOf
    | Reference
    | Behaviour
    | Compare
    | In
    | Between
    | Contains
    | IsNull
    | Not
    | And
    | Or
)


@dataclass(frozen=True)
class Needs:
    """What evaluating a condition reads: trait paths, how far back each event is counted, and
    which metrics (a loader reads the customer's metrics only when this is not empty)."""

    traits: frozenset[str]
    events: dict[str, int | None]  # event name -> longest ``within`` in seconds, None: all
    metrics: frozenset[str] = frozenset()


def needs(expr: Expression) -> Needs:
    """The traits and event history ``expr`` reads, so a loader fetches nothing more."""
    traits: set[str] = set()
    events: dict[str, int | None] = {}
    metrics: set[str] = set()
    pending: list[Expression] = [expr]
    while pending:
        node = pending.pop()
        if isinstance(node, Reference) and node.scope == "profile":
            traits.add(".".join(node.path))
        elif isinstance(node, Reference) and node.scope == "metrics":
            metrics.add(node.path[0])
        elif isinstance(node, Behaviour):
            _widen(events, node.event, node.within)
        pending.extend(_children(node))
    return Needs(frozenset(traits), events, frozenset(metrics))


def merge_needs(parts: Iterable[Needs]) -> Needs:
    """What several conditions read together (all cases of a branch, in one load)."""
    traits: set[str] = set()
    events: dict[str, int | None] = {}
    metrics: set[str] = set()
    for part in parts:
        traits.update(part.traits)
        metrics.update(part.metrics)
        for name, within in part.events.items():
            _widen(events, name, within)
    return Needs(frozenset(traits), events, frozenset(metrics))


def _widen(events: dict[str, int | None], name: str, within: int | None) -> None:
    if name not in events:
        events[name] = within
        return
    known = events[name]
    events[name] = None if known is None or within is None else max(known, within)


def _children(node: Expression) -> tuple[Expression, ...]:
    if isinstance(node, ListOf):
        return node.items
    if isinstance(node, Behaviour):
        return () if node.where is None else (node.where,)
    if isinstance(node, Compare):
        return (node.left, node.right)
    if isinstance(node, In):
        return (node.value, node.options)
    if isinstance(node, Between):
        return (node.value, node.low, node.high)
    if isinstance(node, Contains):
        return (node.container, node.item)
    if isinstance(node, IsNull):
        return (node.value,)
    if isinstance(node, Not):
        return (node.operand,)
    if isinstance(node, And | Or):
        return node.operands
    return ()


def parse(source: str) -> Expression:
    """Parse a condition, or raise ``ExpressionError`` naming the column of the problem."""
    if len(source) > MAX_SOURCE_CHARS:
        raise ExpressionError(
            f"a condition must be at most {MAX_SOURCE_CHARS} characters", MAX_SOURCE_CHARS, source
        )
    return _Parser(source).parse()


TokenKind = Literal["number", "string", "duration", "name", "symbol", "end"]


@dataclass(frozen=True)
class _Token:
    kind: TokenKind
    text: str  # as written in the source
    position: int
    value: str | int | float | None = None  # numbers and decoded strings


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# Digits straight followed by a letter (30d, 6mo, 1d12h) can only be a bare duration.
_DURATION = re.compile(r"[0-9]+[A-Za-z][A-Za-z0-9]*")
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_SYMBOLS = ("==", "!=", ">=", "<=", ">", "<", "(", ")", "[", "]", ",", ":", ".", "-")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "/": "/"}
_HINTS = {"=": "write == to compare", "!": "write != or not", "&": "write and", "|": "write or"}


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while True:
        while i < len(source) and source[i].isspace():
            i += 1
        if i == len(source):
            tokens.append(_Token("end", "", i))
            return tokens
        char = source[i]
        if char in "\"'":
            token = _string(source, i)
        elif found := _DURATION.match(source, i):
            token = _Token("duration", found[0], i)
        elif found := _NUMBER.match(source, i):
            token = _Token("number", found[0], i, _number(found[0], i, source))
        elif found := _NAME.match(source, i):
            token = _Token("name", found[0], i)
        else:
            symbol = next((s for s in _SYMBOLS if source.startswith(s, i)), None)
            if symbol is None:
                hint = f"; {_HINTS[char]}" if char in _HINTS else ""
                raise ExpressionError(f"unexpected character {char!r}{hint}", i, source)
            token = _Token("symbol", symbol, i)
        tokens.append(token)
        i += len(token.text)


def _number(text: str, position: int, source: str) -> int | float:
    try:
        value: int | float = float(text) if "." in text else int(text)
    except ValueError:  # more digits than int() converts
        raise ExpressionError("the number is too long", position, source) from None
    if value in (float("inf"), float("-inf")):
        raise ExpressionError("the number is too large", position, source)
    return value


def _string(source: str, start: int) -> _Token:
    quote = source[start]
    parts: list[str] = []
    i = start + 1
    while True:
        # A string ends on its own line: otherwise one missing quote swallows the rest.
        if i >= len(source) or source[i] == "\n":
            raise ExpressionError("unterminated string", start, source)
        char = source[i]
        if char == quote:
            return _Token("string", source[start : i + 1], start, "".join(parts))
        if char != "\\":
            parts.append(char)
            i += 1
            continue
        escape = source[i + 1 : i + 2]
        if escape in _ESCAPES:
            parts.append(_ESCAPES[escape])
            i += 2
        elif escape == "u" and _HEX4.fullmatch(source, i + 2, i + 6):
            parts.append(chr(int(source[i + 2 : i + 6], 16)))
            i += 6
        elif escape in ("", "\n"):
            raise ExpressionError("unterminated string", start, source)
        elif escape == "u":
            raise ExpressionError("\\u must be followed by four hex digits", i, source)
        else:
            raise ExpressionError(f"unknown escape \\{escape} in a string", i, source)


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the condition"
    if token.kind == "name" and token.text.lower() in KEYWORDS and token.text not in KEYWORDS:
        return f"{token.text!r} (keywords are lowercase: {token.text.lower()})"
    return repr(token.text)


_USAGE = {
    "count": 'count takes the event name, then optional within: and where:, like count("Order'
    ' Completed", within: 30d)',
    "sum": "sum takes the event name and a property name, then optional within: and where:, like"
    ' sum("Order Completed", "total", within: 30d)',
    "last": "last takes the event name and a property name, then optional within: and where:,"
    ' like last("Order Completed", "total")',
    "days_since": 'days_since takes the event name, then an optional where:, like days_since("Order'
    ' Completed")',
}


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokenize(source)
        self.index = 0
        self.depth = 0
        self.in_where = False

    def parse(self) -> Expression:
        if self.peek().kind == "end":
            raise self.error("the condition is empty", 0)
        expr = self.or_()
        token = self.peek()
        if token.kind != "end":
            raise self.error(
                f"unexpected {_describe(token)} after a complete condition;"
                " join conditions with and / or",
                token.position,
            )
        return expr

    def error(self, message: str, position: int) -> ExpressionError:
        return ExpressionError(message, position, self.source)

    def expected(self, what: str) -> ExpressionError:
        token = self.peek()
        return self.error(f"expected {what}, got {_describe(token)}", token.position)

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.peek()
        if token.kind != "end":
            self.index += 1
        return token

    def at(self, kind: TokenKind, text: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == kind and token.text == text

    def accept(self, kind: TokenKind, text: str) -> bool:
        if self.at(kind, text):
            self.advance()
            return True
        return False

    def expect_symbol(self, symbol: str, what: str | None = None) -> _Token:
        if not self.at("symbol", symbol):
            raise self.expected(what or repr(symbol))
        return self.advance()

    @contextmanager
    def nested(self, opener: _Token) -> Iterator[None]:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"the condition nests deeper than {MAX_DEPTH} levels", opener.position)
        yield
        self.depth -= 1

    def or_(self) -> Expression:
        operands = [self.and_()]
        while self.accept("name", "or"):
            operands.append(self.and_())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_(self) -> Expression:
        operands = [self.not_()]
        while self.accept("name", "and"):
            operands.append(self.not_())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def not_(self) -> Expression:
        token = self.peek()
        if not self.accept("name", "not"):
            return self.compare()
        with self.nested(token):
            return Not(self.not_())

    def compare(self) -> Expression:
        left = self.value()
        token = self.peek()
        result: Expression
        if token.kind == "symbol" and token.text in COMPARE_OPS:
            self.advance()
            op = cast(Literal["==", "!=", ">=", "<=", ">", "<"], token.text)
            result = Compare(op, left, self.value())
        elif self.accept("name", "in"):
            result = In(left, self.list_after("in"))
        elif self.at("name", "not") and self.at("name", "in", ahead=1):
            self.index += 2
            result = In(left, self.list_after("not in"), negated=True)
        elif self.accept("name", "between"):
            low = self.value()
            if not self.accept("name", "and"):
                raise self.expected("and between the two bounds of between")
            result = Between(left, low, self.value())
        elif self.accept("name", "contains"):
            result = Contains(left, self.value())
        elif self.accept("name", "is"):
            negated = self.accept("name", "not")
            if not self.accept("name", "null"):
                raise self.expected("null after is" + (" not" if negated else ""))
            result = IsNull(left, negated)
        else:
            return left
        after = self.peek()
        chained = after.kind == "symbol" and after.text in COMPARE_OPS
        if chained or (after.kind == "name" and after.text in ("in", "between", "contains", "is")):
            raise self.error("comparisons cannot be chained; join them with and", after.position)
        return result

    def list_after(self, keyword: str) -> ListOf:
        if not self.at("symbol", "["):
            raise self.expected(f'a list like ["a", "b"] after {keyword}')
        return self.list_()

    def list_(self) -> ListOf:
        opener = self.advance()
        with self.nested(opener):
            items = [self.value()]
            while self.accept("symbol", ","):
                items.append(self.value())
            self.expect_symbol("]", "',' or ']'")
        return ListOf(tuple(items))

    def value(self) -> Expression:
        token = self.peek()
        if token.kind in ("number", "string"):
            self.advance()
            return Constant(token.value)
        if token.kind == "duration":
            raise self.error(
                f"a duration like {token.text} is only allowed after within:", token.position
            )
        if token.kind == "symbol" and token.text == "-":
            self.advance()
            number = self.peek()
            if number.kind != "number" or not isinstance(number.value, int | float):
                raise self.expected("a number after '-'")
            self.advance()
            return Constant(-number.value)
        if token.kind == "symbol" and token.text == "(":
            self.advance()
            with self.nested(token):
                inner = self.or_()
                self.expect_symbol(")", "')'")
            return inner
        if token.kind == "symbol" and token.text == "[":
            return self.list_()
        if token.kind == "name":
            literals = {"true": True, "false": False, "null": None}
            if token.text in literals:
                self.advance()
                return Constant(literals[token.text])
            if token.text not in KEYWORDS:
                return self.call() if self.at("symbol", "(", ahead=1) else self.reference()
        raise self.expected("a value")

    def reference(self) -> Reference:
        head = self.advance()
        if head.text == "metrics":
            return self.metric()
        if head.text in ("profile", "event"):
            if not self.at("symbol", "."):
                kind = "trait" if head.text == "profile" else "property"
                raise self.expected(f"'.' and a {kind} name after {head.text}")
            return Reference(cast(Scope, head.text), self.dotted_names())
        if not self.in_where:
            raise self.error(
                f"unknown name {head.text!r}: write profile.{head.text} for a trait or"
                f" event.{head.text} for a property of the triggering event",
                head.position,
            )
        return Reference("counted", (head.text, *self.dotted_names()))

    def metric(self) -> Reference:
        if not self.accept("symbol", "."):
            raise self.expected("'.' and a metric name after metrics, like metrics.order_count")
        name = self.peek()
        if name.kind != "name":
            raise self.expected("a metric name after 'metrics.'")
        if name.text not in METRICS:
            raise self.error(
                f"unknown metric {name.text!r}; the metrics are {', '.join(METRICS)}",
                name.position,
            )
        self.advance()
        if self.at("symbol", "."):
            raise self.error(f"metrics.{name.text} has no fields", self.peek().position)
        return Reference("metrics", (name.text,))

    def dotted_names(self) -> tuple[str, ...]:
        names: list[str] = []
        while self.accept("symbol", "."):
            # Keywords are fine here: after a dot a word can only be a name.
            if self.peek().kind != "name":
                raise self.expected("a name after '.'")
            names.append(self.advance().text)
        return tuple(names)

    def call(self) -> Behaviour:
        name = self.advance()
        if name.text not in FUNCTIONS:
            raise self.error(
                f"unknown function {name.text!r}; the behaviour functions are count, sum, last"
                " and days_since",
                name.position,
            )
        if self.in_where:
            raise self.error(f"{name.text} cannot be used inside where:", name.position)
        function = cast(Function, name.text)
        opener = self.advance()
        with self.nested(opener):
            event = self.string_argument(function, "the event name")
            prop = None
            if function in ("sum", "last"):
                if not self.accept("symbol", ","):
                    raise self.error(_USAGE[function], self.peek().position)
                prop = self.string_argument(function, "the property name")
            within, where = self.named_arguments(function)
            self.expect_symbol(")", "',' or ')'")
        return Behaviour(function, event, prop, within, where)

    def string_argument(self, function: str, what: str) -> str:
        token = self.peek()
        if token.kind != "string" or not isinstance(token.value, str):
            raise self.error(_USAGE[function], token.position)
        if not token.value:
            raise self.error(f"{what} must not be empty", token.position)
        self.advance()
        return token.value

    def named_arguments(self, function: Function) -> tuple[int | None, Expression | None]:
        within: int | None = None
        where: Expression | None = None
        seen: set[str] = set()
        while self.accept("symbol", ","):
            key = self.peek()
            if key.kind != "name" or not self.at("symbol", ":", ahead=1):
                raise self.error(_USAGE[function], key.position)
            if key.text not in ("within", "where") or (
                key.text == "within" and function == "days_since"
            ):
                raise self.error(f"{key.text}: is not an argument of {function}", key.position)
            if key.text in seen:
                raise self.error(f"{key.text}: is given twice", key.position)
            seen.add(key.text)
            self.index += 2
            if key.text == "within":
                within = self.duration()
            else:
                outer, self.in_where = self.in_where, True
                where = self.or_()
                self.in_where = outer
        return within, where

    def duration(self) -> int:
        token = self.advance()
        text = token.value if token.kind == "string" else token.text
        if token.kind not in ("duration", "string") or not isinstance(text, str):
            message = "within: expects a duration with a unit, like 30d, 2w, 12h or 6mo"
            raise self.error(message, token.position)
        try:
            seconds = duration_seconds(text)
        except ValueError:
            raise self.error(
                f"within: expects a duration from 1s to 3650d, like 30d, 2w, 12h, 1d12h or 6mo,"
                f" got {text!r}",
                token.position,
            ) from None
        return seconds


_MONTHS = re.compile(r"\s*([0-9]+)mo(.*)", re.DOTALL)


def duration_seconds(text: str) -> int:
    """Seconds in ``text``: the journey durations plus a leading month count (``6mo`` = 180d)."""
    # Imported here: the language package's __init__ loads the compiler, which parses
    # conditions with this module, so a top-level import would be circular.
    from journeyman.orchestrator.language.durations import (
        MAX_SECONDS,
        DurationError,
        parse_duration,
    )

    months = _MONTHS.fullmatch(text)
    if months is None:
        seconds = parse_duration(text)
    else:
        rest = months[2]
        seconds = int(months[1]) * MONTH_SECONDS + (parse_duration(rest) if rest.strip() else 0)
    if not 0 < seconds <= MAX_SECONDS:
        raise DurationError(f"a duration must be from 1s to {MAX_SECONDS // 86400}d")
    return seconds
