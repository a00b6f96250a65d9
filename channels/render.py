"""Render message templates with Jinja2 in a strict, bounded sandbox.

Templates come from journey definitions and the values from customer events, so rendering
runs in Jinja2's immutable sandbox: no attributes starting with ``_``, no mutating the
context (``{{ profile.update(...) }}``), no ``str.format`` field access to private names.
On top of it:

- **Strict undefined.** A missing value is an error naming it (``'profile.nickname' is
  undefined``) so a typo fails loudly instead of sending "Hi ,". ``| default("there")``
  and ``is defined`` are the explicit ways to allow a missing value.
- **Calls are allow-listed.** A template may call macros, ``loop``/``cycler``/``joiner``/
  ``namespace``/``range``/``dict`` and the plain text methods of strings (``upper``,
  ``split``, ``replace``...) and mappings (``get``, ``items``...); nothing else.
- **Work is bounded.** Loop iterations, calls, filters and operators count against an
  operation budget; every value the template builds (``"a" * n``, ``~``, ``replace``,
  ``join``, ``center``, format widths) is sized before it is built; the output is cut off
  past a limit. A template over a limit fails cleanly instead of taking the worker down.

HTML is autoescaped; subject and text are not, because escaping there would show ``&amp;``
to the reader. Text templates get a ``tojson`` filter that writes plain JSON (for webhook
bodies); HTML templates keep Jinja's HTML-safe one. Any failure becomes a
``TemplateRenderError`` (a ``RenderError``) naming the part, the line and the reason.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import decimal
import functools
import json
import re
import string
import threading
import types
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, Literal, NamedTuple, TypeVar

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.runtime import LoopContext, Macro, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace, missing, pass_eval_context
from jinja2.visitor import NodeTransformer
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, Field

from .errors import RenderError

Part = Literal["subject", "body", "html"]
Reason = Literal["syntax", "undefined", "unsafe", "too_large", "error"]

T = TypeVar("T")


class EmailTemplate(BaseModel):
    """The three template sources of an email; ``html`` is optional."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str
    body: str
    html: str | None = None


class RenderedEmail(BaseModel):
    """An email's rendered parts: a one-line subject, the text body and optional HTML."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str
    text: str
    html: str | None = None


class MessageTemplate(BaseModel):
    """The template texts of one send on any channel, named as a journey's send step names
    them: email ``subject``/``body``/``html``; sms ``body``; push and in_app ``subject``
    (the title), ``body`` and ``data``; webhook ``url``, ``headers`` and ``body``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str = ""
    body: str = ""
    html: str | None = None
    data: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class RenderedMessage(BaseModel):
    """A ``MessageTemplate`` rendered: the same fields, filled in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str = ""
    body: str = ""
    html: str | None = None
    data: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


# The fields each channel reads; any other non-empty field is a mistake worth reporting.
CHANNEL_FIELDS: Final[dict[str, frozenset[str]]] = {
    "email": frozenset({"subject", "body", "html"}),
    "sms": frozenset({"body"}),
    "push": frozenset({"subject", "body", "data"}),
    "in_app": frozenset({"subject", "body", "data"}),
    "webhook": frozenset({"url", "headers", "body"}),
}


class CacheInfo(NamedTuple):
    """Compiled-template cache statistics."""

    hits: int
    misses: int
    size: int
    maxsize: int


@dataclasses.dataclass(frozen=True)
class RenderLimits:
    """What one template part may cost.

    ``max_output_chars`` bounds the rendered text and any single value built on the way;
    ``max_work_chars`` bounds all the text built on the way together; ``max_operations``
    counts loop iterations, calls, filters and the sized operators.
    """

    max_output_chars: int = 1_000_000
    max_work_chars: int = 10_000_000
    max_operations: int = 100_000


class TemplateRenderError(RenderError):
    """A template failed; ``line`` is the template line (None when unknown) and ``reason``
    says why: ``syntax``, ``undefined``, ``unsafe`` (refused by the sandbox), ``too_large``
    (over a ``RenderLimits`` bound) or ``error`` (anything else the template did)."""

    def __init__(self, message: str, *, part: str, line: int | None, reason: Reason) -> None:
        super().__init__(message, part=part)
        self.line = line
        self.reason = reason


# --- what templates see -------------------------------------------------------------------


def template_context(
    *,
    profile: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    event_name: str | None = None,
    event_properties: Mapping[str, Any] | None = None,
    journey: Mapping[str, Any] | None = None,
    customer_id: str | None = None,
) -> dict[str, Any]:
    """The names a message template reads, the same for every channel and for previews.

    ``profile`` is the customer's traits; ``metrics`` the behavioural metrics as conditions
    read them; ``event`` the triggering event as ``{name, properties}``; ``journey``
    ``{id, name, stage, step}``; ``customer_id`` the customer's id.
    """
    return {
        "profile": dict(profile),
        "metrics": dict(metrics or {}),
        "event": {"name": event_name, "properties": dict(event_properties or {})},
        "journey": {
            "id": None,
            "name": None,
            "stage": None,
            "step": None,
            **(journey or {}),
        },
        "customer_id": customer_id,
    }


def locale_candidates(locale: str | None) -> list[str]:
    """The variants to try for a locale, most specific first: ``zh-Hant-TW`` gives
    ``zh-hant-tw``, ``zh-hant``, ``zh`` (then the caller's default). Tags are lowercase with
    ``-``, as journeys spell them; ``zh_TW`` counts as ``zh-tw``."""
    if not locale:
        return []
    parts = [p for p in locale.strip().replace("_", "-").lower().split("-") if p]
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]


def pick_locale(variants: Mapping[str, T], locale: str | None) -> T | None:
    """The variant for ``locale`` with fallback to shorter tags; None means the default."""
    for candidate in locale_candidates(locale):
        if candidate in variants:
            return variants[candidate]
    return None


def one_line(text: str) -> str:
    """Collapse ``text`` to one line: each line stripped, blank lines dropped, joined by spaces.

    ``splitlines`` also splits on the other Unicode line breaks, none of which may reach a
    mail header.
    """
    return " ".join(stripped for line in text.splitlines() if (stripped := line.strip()))


# --- the budget of one render -------------------------------------------------------------


class LimitExceeded(SecurityError):
    """A template went over a ``RenderLimits`` bound."""


class _Budget:
    """Counts what one render has spent; lives in a context variable while it renders."""

    def __init__(self, limits: RenderLimits, roots: Mapping[str, Any]) -> None:
        self.limits = limits
        self.roots = roots  # the render's context, to name the path of an undefined value
        self.operations = 0
        self.work = 0

    def step(self, count: int = 1) -> None:
        self.operations += count
        if self.operations > self.limits.max_operations:
            raise LimitExceeded(
                f"template did more than {self.limits.max_operations} operations"
                " (loop iterations, calls, filters)"
            )

    def build(self, size: int, what: str) -> None:
        """Account for a value of ``size`` characters about to be built by ``what``."""
        if size > self.limits.max_output_chars:
            raise LimitExceeded(
                f"{what} would build a value of about {size} characters; the limit is"
                f" {self.limits.max_output_chars}"
            )
        self.work += size
        if self.work > self.limits.max_work_chars:
            raise LimitExceeded(
                f"template built more than {self.limits.max_work_chars} characters of text"
            )


_BUDGET: contextvars.ContextVar[_Budget] = contextvars.ContextVar("journeyman_render_budget")


def _budget() -> _Budget:
    found = _BUDGET.get(None)
    # Compiling folds constants, which runs filters outside a render: give those a budget too.
    return found if found is not None else _Budget(RenderLimits(), {})


def _size(value: Any, cap: int) -> int:
    """About how many characters ``value`` takes as text, counted until past ``cap``."""
    if isinstance(value, str):
        return len(value)
    total = 0
    stack = [value]
    while stack and total <= cap:
        item = stack.pop()
        total += 1  # at least one character per item, so the walk always ends
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, dict):
            total += 2 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 * len(item)
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3  # decimal digits, roughly
    return total


# Integers past this many bits are not numbers a message needs (and cost time to build).
MAX_INT_BITS: Final = 4096
# Widths and precisions in format specs (``{:>20}``, ``%-8s``, ``center(40)``) above this
# are refused: a message never needs them, and they build long strings from nothing.
MAX_FORMAT_WIDTH: Final = 1000
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_DIGITS = re.compile(r"\d+")


def _bounded_range(*args: int) -> range:
    """``range`` for templates: no longer than the operation budget could iterate."""
    numbers = range(*args)
    limit = _budget().limits.max_operations
    try:
        size = len(numbers)
    except OverflowError:  # longer than the platform can even count
        size = limit + 1
    if size > limit:
        raise LimitExceeded(f"range of {size} numbers is over the limit of {limit}")
    return numbers


def _check_width(width: Any, what: str) -> None:
    if isinstance(width, int) and width > MAX_FORMAT_WIDTH:
        raise LimitExceeded(f"{what} of {width} is over the limit of {MAX_FORMAT_WIDTH}")


def _check_percent_format(fmt: str) -> None:
    for match in _PERCENT_SPEC.finditer(fmt):
        for group in match.groups():
            if group == "*":
                raise LimitExceeded("'*' widths in % formats are not allowed in templates")
            if group is not None:
                _check_width(int(group), "a format width")


def _check_brace_format(fmt: str) -> None:
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error with a better message
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec:
            raise LimitExceeded("nested fields in format specs are not allowed in templates")
        for digits in _DIGITS.findall(spec):
            _check_width(int(digits), "a format width")


# --- sized operations ---------------------------------------------------------------------


def _count_iterations(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every ``{% for %}`` loop iterates through this, so iterations count as operations."""
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


@pass_eval_context
def _concat(eval_ctx: nodes.EvalContext, *parts: Any) -> str:
    """The ``~`` operator, sized before it joins."""
    budget = _budget()
    budget.build(sum(_size(p, budget.limits.max_output_chars) for p in parts), "'~'")
    joined: str = markup_join(parts) if eval_ctx.autoescape else str_join(parts)
    return joined


class _Guard(NodeTransformer):
    """Routes loops and ``~`` through the sized helpers above.

    The helpers are reached as imports of this module, which a template cannot name or
    shadow.
    """

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(
            nodes.ImportedName(f"{__name__}._count_iterations"),
            [node.iter],
            [],
            None,
            None,
            lineno=node.iter.lineno,
        )
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(
            nodes.ImportedName(f"{__name__}._concat"),
            node.nodes,
            [],
            None,
            None,
            lineno=node.lineno,
        )


def _arg(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any
) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _replace_size(text: str, old: Any, new: Any, count: Any) -> int:
    if not isinstance(old, str) or not isinstance(new, str):
        return len(text)
    hits = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(0, len(new) - len(old))


def _join_size(items: list[Any], separator: Any, cap: int) -> int:
    sep = len(separator) if isinstance(separator, str) else 0
    return sum(_size(i, cap) for i in items) + sep * max(0, len(items) - 1)


def _filter_estimate(
    name: str, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], cap: int
) -> int | None:
    """The size a growing filter will build, before it runs; None for the others."""
    text = value if isinstance(value, str) else None
    if name == "center":
        width = _arg(args, kwargs, 0, "width", 80)
        _check_width(width, "a center width")
        return max(_size(value, cap), width if isinstance(width, int) else 0)
    if name == "indent":
        width = _arg(args, kwargs, 0, "width", 4)
        unit = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        _check_width(unit, "an indent")
        lines = text.count("\n") + 1 if text is not None else 1
        return _size(value, cap) + lines * unit
    if name == "wordwrap" and text is not None:
        width = _arg(args, kwargs, 0, "width", 79)
        wrap = _arg(args, kwargs, 2, "wrapstring", None)
        breaks = len(text) // max(1, width if isinstance(width, int) else 1) + text.count("\n")
        return len(text) + (breaks + 1) * (len(wrap) if isinstance(wrap, str) else 1)
    if name == "replace" and text is not None:
        return _replace_size(
            text,
            _arg(args, kwargs, 0, "old", None),
            _arg(args, kwargs, 1, "new", None),
            _arg(args, kwargs, 2, "count", None),
        )
    if name == "format" and text is not None:
        _check_percent_format(text)
        return len(text) + _size(args, cap) + _size(kwargs, cap)
    if name in ("batch", "slice"):
        amount = _arg(args, kwargs, 0, "linecount" if name == "batch" else "slices", 1)
        _check_width(amount, f"a {name} size")
    return None


def _sized_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` (a filter) counted as an operation and sized before and after it runs."""
    leading = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)
    def sized(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        cap = budget.limits.max_output_chars
        value = args[leading] if len(args) > leading else None
        rest = args[leading + 1 :]
        if name == "join":
            # Joining builds the sum of the parts: read them once to size it first.
            items = list(value) if isinstance(value, Iterable) else []
            attribute = _arg(rest, kwargs, 1, "attribute", None)
            if attribute is None:
                budget.build(_join_size(items, _arg(rest, kwargs, 0, "d", ""), cap), "join")
            args = (*args[:leading], items, *rest)
        estimate = _filter_estimate(name, value, rest, kwargs, cap)
        if estimate is not None:
            budget.build(estimate, name)
        result = func(*args, **kwargs)
        if result is not value and isinstance(result, str | list | tuple | dict):
            budget.build(_size(result, cap + 1), name)
        return result

    return sized


def _to_json(value: Any, indent: int | None = None) -> str:
    """``tojson`` for text parts: plain JSON (for webhook bodies), UTF-8 kept as is."""
    try:
        return json.dumps(
            value, ensure_ascii=False, indent=indent, default=_json_default, allow_nan=False
        )
    except ValueError as exc:  # NaN or infinity: not JSON
        raise ValueError(f"tojson: {exc}") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined):
        str(value)  # raises the undefined error, naming the value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Markup):
        return str(value)
    raise TypeError(f"tojson: a {type(value).__name__} is not JSON")


# --- the environment ----------------------------------------------------------------------

# Methods of strings and mappings a template may call. The sized ones are measured first.
_STR_METHODS: Final = frozenset(
    {
        "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha",
        "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper",
        "lower", "lstrip", "partition", "removeprefix", "removesuffix", "rfind", "rindex",
        "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip",
        "swapcase", "title", "upper", "striptags", "unescape",
        "center", "ljust", "rjust", "zfill", "replace", "join",
    }
)  # fmt: skip
_MAPPING_METHODS: Final = frozenset({"get", "items", "keys", "values"})
_SEQUENCE_METHODS: Final = frozenset({"count", "index"})
_LOOP_METHODS: Final = frozenset({"cycle", "changed"})
_CALLABLE_TYPES: Final = (Macro, LoopContext, Joiner)
_ALLOWED_CALLS: Final[tuple[Any, ...]] = (
    _bounded_range, dict, Cycler, Joiner, Namespace, _count_iterations, _concat,
)  # fmt: skip


class _FormatCall:
    """``str.format``/``format_map`` of a template string, with its widths checked."""

    def __init__(self, fmt: str, call: Callable[..., str]) -> None:
        self._fmt = fmt
        self._call = call

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        _check_brace_format(self._fmt)
        budget = _budget()
        cap = budget.limits.max_output_chars
        budget.build(len(self._fmt) + _size(args, cap) + _size(kwargs, cap), "format")
        return self._call(*args, **kwargs)


def _describe(obj: Any) -> str:
    name = getattr(obj, "__name__", None)
    owner = getattr(obj, "__self__", None)
    if name and owner is not None:
        return f"{type(owner).__name__}.{name}"
    return repr(name) if name else f"a {type(obj).__name__}"


class _PathUndefined(jinja2.StrictUndefined):
    """Strict undefined whose error names the whole path: ``'profile.nickname' is undefined``."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        obj, name = self._undefined_obj, self._undefined_name
        if self._undefined_hint is None and obj is not missing and isinstance(name, str | int):
            path = _path_of(obj)
            if path is not None:
                step = (
                    f".{name}" if isinstance(name, str) and name.isidentifier() else f"[{name!r}]"
                )
                return f"{path + step!r} is undefined"
        message: str = super()._undefined_message
        return message


def _path_of(target: Any, limit: int = 10_000) -> str | None:
    """Where ``target`` sits in the render's context (``event.properties.items[0]``)."""
    queue: deque[tuple[str, Any]] = deque(_budget().roots.items())
    seen = 0
    while queue and seen < limit:
        path, value = queue.popleft()
        seen += 1
        if value is target:
            return path
        if isinstance(value, dict):
            queue.extend(
                (f"{path}.{k}" if isinstance(k, str) and k.isidentifier() else f"{path}[{k!r}]", v)
                for k, v in value.items()
            )
        elif isinstance(value, list | tuple):
            queue.extend((f"{path}[{i}]", v) for i, v in enumerate(value))
    return None


class _SafeEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox with strict undefined, allow-listed calls and sized work."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(
            undefined=_PathUndefined,
            autoescape=autoescape,
            finalize=self._sized_output,
            # Templates are single strings; there is nothing to load or reload.
            auto_reload=False,
            cache_size=0,
        )
        # lipsum writes paragraphs from nothing; the rest of the globals are small.
        self.globals.pop("lipsum", None)
        self.globals["range"] = _bounded_range
        if not autoescape:
            self.filters["tojson"] = _to_json
        self.filters = {name: _sized_filter(name, f) for name, f in self.filters.items()}
        # Sized joins for macro bodies, ``{% set %}`` blocks and call blocks.
        self.concat = self._sized_concat  # type: ignore[method-assign]

    @staticmethod
    def _sized_output(value: Any) -> Any:
        budget = _budget()
        budget.build(_size(value, budget.limits.max_output_chars + 1), "output")
        return value

    @staticmethod
    def _sized_concat(parts: Iterable[str]) -> str:
        chunks = list(parts)
        budget = _budget()
        budget.build(sum(len(c) for c in chunks), "block")
        return "".join(chunks)

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        budget = _budget()
        budget.step()
        cap = budget.limits.max_output_chars
        numbers = (int, float)
        if operator == "*":
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise LimitExceeded(f"'*' would build an integer over {MAX_INT_BITS} bits")
            elif isinstance(right, int) and not isinstance(left, numbers):
                budget.build(_size(left, cap) * max(0, right), "'*'")
            elif isinstance(left, int) and not isinstance(right, numbers):
                budget.build(_size(right, cap) * max(0, left), "'*'")
        elif operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and abs(left) > 1
                and left.bit_length() * right > MAX_INT_BITS
            ):
                raise LimitExceeded(f"'**' would build an integer over {MAX_INT_BITS} bits")
        elif operator == "+":
            if not isinstance(left, numbers) and not isinstance(right, numbers):
                budget.build(_size(left, cap) + _size(right, cap), "'+'")
        elif operator == "%" and isinstance(left, str):
            _check_percent_format(left)
            budget.build(len(left) + _size(right, cap), "'%'")
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        return _FormatCall(value.__self__, wrapped)

    def call(
        __self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any
    ) -> Any:
        budget = _budget()
        budget.step()
        if isinstance(__obj, jinja2.Undefined):
            return __obj(*args, **kwargs)  # raises the undefined (or unsafe) error
        if isinstance(__obj, LoopContext) and args:
            # A recursive loop's ``loop(children)`` iterates like a loop does.
            args = (_count_iterations(args[0]), *args[1:])
        elif isinstance(__obj, types.BuiltinMethodType | types.MethodType):
            __self._check_method(__obj, args, kwargs, budget)
        elif not (
            isinstance(__obj, (*_CALLABLE_TYPES, _FormatCall))
            or any(__obj is allowed for allowed in _ALLOWED_CALLS)
        ):
            raise SecurityError(f"{_describe(__obj)} cannot be called from a template")
        return super().call(__context, __obj, *args, **kwargs)

    @staticmethod
    def _check_method(
        method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: _Budget
    ) -> None:
        owner, name = method.__self__, method.__name__
        cap = budget.limits.max_output_chars
        if isinstance(owner, str) and name in _STR_METHODS:
            if name in ("center", "ljust", "rjust", "zfill"):
                width = _arg(args, kwargs, 0, "width", 0)
                _check_width(width, f"a {name} width")
            elif name == "replace":
                budget.build(_replace_size(owner, *[*args, None, None, None][:3]), name)
            elif name == "join":
                items = args[0] if args else []
                if not isinstance(items, list | tuple | str):
                    raise SecurityError("str.join takes a list in templates; use | join")
                budget.build(_join_size(list(items), owner, cap), name)
            return
        if isinstance(owner, dict) and name in _MAPPING_METHODS:
            return
        if isinstance(owner, list | tuple) and name in _SEQUENCE_METHODS:
            return
        if isinstance(owner, LoopContext) and name in _LOOP_METHODS:
            return
        if isinstance(owner, Cycler) and name in ("next", "reset"):
            return
        raise SecurityError(f"{_describe(method)} cannot be called from a template")


# --- the renderer -------------------------------------------------------------------------


def _template_line(exc: BaseException) -> int | None:
    """The template line an error was raised on, from the traceback Jinja rewrites."""
    if isinstance(exc, TemplateSyntaxError):
        return exc.lineno
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _reason(exc: BaseException) -> Reason:
    if isinstance(exc, LimitExceeded):
        return "too_large"
    if isinstance(exc, SecurityError):
        return "unsafe"
    if isinstance(exc, UndefinedError):
        return "undefined"
    return "error"


def _failure(part: str, exc: BaseException) -> TemplateRenderError:
    line = _template_line(exc)
    where = f" on line {line}" if line is not None else ""
    reason = _reason(exc)
    # Anything but a template error is also the template's doing ({{ 1 / 0 }}, {{ n + "" }}).
    template_error = isinstance(exc, jinja2.TemplateError)
    detail = str(exc) if template_error else f"{type(exc).__name__}: {exc}"
    return TemplateRenderError(
        f"{part} template failed{where}: {detail}", part=part, line=line, reason=reason
    )


class Renderer:
    """Renders templates in a sandbox, compiling each distinct source once (LRU cache).

    Safe to share between threads and tasks: compiled templates are immutable, the cache
    is guarded by a lock, and each render's budget lives in a context variable.
    """

    def __init__(self, *, cache_size: int = 512, limits: RenderLimits | None = None) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self.limits = limits or RenderLimits()
        self._environments = {
            False: _SafeEnvironment(autoescape=False),
            True: _SafeEnvironment(autoescape=True),
        }
        # Keyed by escaping mode too: the same source compiles differently with autoescape.
        self._cache: OrderedDict[tuple[bool, str], jinja2.Template] = OrderedDict()
        self._maxsize = cache_size
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def render_email(self, template: EmailTemplate, context: Mapping[str, Any]) -> RenderedEmail:
        """Render subject, body and html with ``context``; raise ``RenderError`` on failure."""
        subject = one_line(self.render(template.subject, context, part="subject"))
        text = self.render(template.body, context, part="body")
        html = None
        if template.html is not None:
            html = self.render(template.html, context, part="html", html=True)
        return RenderedEmail(subject=subject, text=text, html=html)

    def render_text(self, source: str, context: Mapping[str, Any], *, part: str = "text") -> str:
        """Render a text template (SMS, push, in-app, webhook body): no HTML escaping, and
        ``| tojson`` writes plain JSON."""
        return self.render(source, context, part=part)

    def render_message(
        self, channel: str, template: MessageTemplate, context: Mapping[str, Any]
    ) -> RenderedMessage:
        """Render the fields ``channel`` reads; ``RenderError`` names the failing part
        (``subject``, or ``title`` for push and in-app; ``data.cta``, ``headers.X-Token``...).

        ``ValueError`` when the template fills a field the channel does not read (an SMS
        with a subject), since that text would silently go nowhere.
        """
        fields = CHANNEL_FIELDS.get(channel)
        if fields is None:
            raise ValueError(f"unknown channel {channel!r}; one of {', '.join(CHANNEL_FIELDS)}")
        stray = sorted(
            name
            for name in template.model_fields_set
            if getattr(template, name) and name not in fields
        )
        if stray:
            raise ValueError(f"{channel} messages have no {' or '.join(stray)}")
        out: dict[str, Any] = {}
        if "subject" in fields:
            # Push and in-app messages call it a title, as the send path's errors do.
            part = "subject" if channel == "email" else "title"
            out["subject"] = one_line(self.render(template.subject, context, part=part))
        out["body"] = self.render(template.body, context, part="body")
        if "html" in fields and template.html is not None:
            out["html"] = self.render(template.html, context, part="html", html=True)
        if "data" in fields:
            out["data"] = {
                k: self.render(v, context, part=f"data.{k}") for k, v in template.data.items()
            }
        if "url" in fields and template.url is not None:
            out["url"] = one_line(self.render(template.url, context, part="url"))
        if "headers" in fields:
            out["headers"] = {
                k: one_line(self.render(v, context, part=f"headers.{k}"))
                for k, v in template.headers.items()
            }
        return RenderedMessage(**out)

    def render(
        self,
        source: str,
        context: Mapping[str, Any],
        *,
        part: str = "template",
        html: bool = False,
    ) -> str:
        """Render one template source; ``html`` turns autoescaping on.

        ``part`` names the template in the error message.
        """
        template = self._compiled(source, html=html, part=part)
        values = dict(context)
        token = _BUDGET.set(_Budget(self.limits, values))
        try:
            chunks: list[str] = []
            size = 0
            for chunk in template.generate(values):
                size += len(chunk)
                if size > self.limits.max_output_chars:
                    raise LimitExceeded(
                        f"output is longer than {self.limits.max_output_chars} characters"
                    )
                chunks.append(chunk)
            return "".join(chunks)
        except Exception as exc:
            raise _failure(part, exc) from exc
        finally:
            _BUDGET.reset(token)

    def cache_info(self) -> CacheInfo:
        """Hits, misses and size of the compiled-template cache."""
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._cache), self._maxsize)

    def _compiled(self, source: str, *, html: bool, part: str) -> jinja2.Template:
        key = (html, source)
        with self._lock:
            template = self._cache.get(key)
            if template is not None:
                self._cache.move_to_end(key)
                self._hits += 1
                return template
            self._misses += 1
        # Compile outside the lock: two threads may compile the same source at once, which
        # costs a little work but never blocks renders of cached templates.
        environment = self._environments[html]
        token = _BUDGET.set(_Budget(self.limits, {}))
        try:
            tree: nodes.Template = _Guard().visit(environment.parse(source))
            template = environment.from_string(tree)
        except TemplateSyntaxError as exc:
            raise TemplateRenderError(
                f"{part} template has a syntax error on line {exc.lineno}: {exc.message}",
                part=part,
                line=exc.lineno,
                reason="syntax",
            ) from exc
        except jinja2.TemplateError as exc:
            raise TemplateRenderError(
                f"{part} template failed to compile: {exc}", part=part, line=None, reason="error"
            ) from exc
        finally:
            _BUDGET.reset(token)
        with self._lock:
            self._cache[key] = template
            self._cache.move_to_end(key)
            while len(self._cache) > self._maxsize:
                self._cache.popitem(last=False)
        return template


_default_renderer = Renderer()


def render_text(template: str, context: Mapping[str, Any], *, part: str = "text") -> str:
    """Render a text template (SMS, push title and body, webhook body) with a shared renderer.

    No HTML escaping; ``| tojson`` writes plain JSON. Raises ``RenderError`` on failure.
    """
    return _default_renderer.render_text(template, context, part=part)
