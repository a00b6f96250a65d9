"""The template environment: Jinja2's immutable sandbox, strict and bounded.

A missing value is an error naming its path; only allow-listed calls run (macros, the loop
helpers, ``range``/``dict``, the plain text methods of strings and mappings); operators,
filters, format calls and the output are counted against the render's budget. Text
templates get a ``tojson`` that writes plain JSON.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import types
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace, missing
from markupsafe import Markup

from .render_budget import (
    MAX_INT_BITS,
    Budget,
    LimitExceeded,
    bounded_range,
    check_brace_format,
    check_percent_format,
    check_width,
    current_budget,
    size_of,
)
from .sized_operations import (
    argument,
    concat_operator,
    count_iterations,
    join_size,
    replace_size,
    sized_filter,
)


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
    bounded_range, dict, Cycler, Joiner, Namespace, count_iterations, concat_operator,
)  # fmt: skip


class _FormatCall:
    """``str.format``/``format_map`` of a template string, with its widths checked."""

    def __init__(self, fmt: str, call: Callable[..., str]) -> None:
        self._fmt = fmt
        self._call = call

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        check_brace_format(self._fmt)
        budget = current_budget()
        cap = budget.limits.max_output_chars
        budget.build(len(self._fmt) + size_of(args, cap) + size_of(kwargs, cap), "format")
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
    queue: deque[tuple[str, Any]] = deque(current_budget().roots.items())
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


class SafeEnvironment(ImmutableSandboxedEnvironment):
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
        self.globals["range"] = bounded_range
        if not autoescape:
            self.filters["tojson"] = _to_json
        self.filters = {name: sized_filter(name, f) for name, f in self.filters.items()}
        # Sized joins for macro bodies, ``{% set %}`` blocks and call blocks.
        self.concat = self._sized_concat  # type: ignore[method-assign]

    @staticmethod
    def _sized_output(value: Any) -> Any:
        budget = current_budget()
        budget.build(size_of(value, budget.limits.max_output_chars + 1), "output")
        return value

    @staticmethod
    def _sized_concat(parts: Iterable[str]) -> str:
        chunks = list(parts)
        budget = current_budget()
        budget.build(sum(len(c) for c in chunks), "block")
        return "".join(chunks)

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        budget = current_budget()
        budget.step()
        cap = budget.limits.max_output_chars
        numbers = (int, float)
        if operator == "*":
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise LimitExceeded(f"'*' would build an integer over {MAX_INT_BITS} bits")
            elif isinstance(right, int) and not isinstance(left, numbers):
                budget.build(size_of(left, cap) * max(0, right), "'*'")
            elif isinstance(left, int) and not isinstance(right, numbers):
                budget.build(size_of(right, cap) * max(0, left), "'*'")
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
                budget.build(size_of(left, cap) + size_of(right, cap), "'+'")
        elif operator == "%" and isinstance(left, str):
            check_percent_format(left)
            budget.build(len(left) + size_of(right, cap), "'%'")
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        return _FormatCall(value.__self__, wrapped)

    def call(
        __self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any
    ) -> Any:
        budget = current_budget()
        budget.step()
        if isinstance(__obj, jinja2.Undefined):
            return __obj(*args, **kwargs)  # raises the undefined (or unsafe) error
        if isinstance(__obj, LoopContext) and args:
            # A recursive loop's ``loop(children)`` iterates like a loop does.
            args = (count_iterations(args[0]), *args[1:])
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
        method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], budget: Budget
    ) -> None:
        owner, name = method.__self__, method.__name__
        cap = budget.limits.max_output_chars
        if isinstance(owner, str) and name in _STR_METHODS:
            if name in ("center", "ljust", "rjust", "zfill"):
                width = argument(args, kwargs, 0, "width", 0)
                check_width(width, f"a {name} width")
            elif name == "replace":
                budget.build(replace_size(owner, *[*args, None, None, None][:3]), name)
            elif name == "join":
                items = args[0] if args else []
                if not isinstance(items, list | tuple | str):
                    raise SecurityError("str.join takes a list in templates; use | join")
                budget.build(join_size(list(items), owner, cap), name)
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
