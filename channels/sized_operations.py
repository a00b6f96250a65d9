"""The operations a template can grow text with, counted and sized before they run.

Loops and ``~`` are rewritten at compile time (``Guard``) to go through the helpers here;
filters are wrapped (``sized_filter``) so each call counts and what it would build is sized
first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from jinja2 import nodes
from jinja2.runtime import markup_join, str_join
from jinja2.utils import pass_eval_context
from jinja2.visitor import NodeTransformer

from .render_budget import check_percent_format, check_width, current_budget, size_of


def count_iterations(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every ``{% for %}`` loop iterates through this, so iterations count as operations."""
    budget = current_budget()
    for item in iterable:
        budget.step()
        yield item


@pass_eval_context
def concat_operator(eval_ctx: nodes.EvalContext, *parts: Any) -> str:
    """The ``~`` operator, sized before it joins."""
    budget = current_budget()
    budget.build(sum(size_of(p, budget.limits.max_output_chars) for p in parts), "'~'")
    joined: str = markup_join(parts) if eval_ctx.autoescape else str_join(parts)
    return joined


class Guard(NodeTransformer):
    """Routes loops and ``~`` through the sized helpers above.

    The helpers are reached as imports of this module, which a template cannot name or
    shadow.
    """

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(
            nodes.ImportedName(f"{__name__}.count_iterations"),
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
            nodes.ImportedName(f"{__name__}.concat_operator"),
            node.nodes,
            [],
            None,
            None,
            lineno=node.lineno,
        )


def argument(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any
) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def replace_size(text: str, old: Any, new: Any, count: Any) -> int:
    if not isinstance(old, str) or not isinstance(new, str):
        return len(text)
    hits = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(0, len(new) - len(old))


def join_size(items: list[Any], separator: Any, cap: int) -> int:
    sep = len(separator) if isinstance(separator, str) else 0
    return sum(size_of(i, cap) for i in items) + sep * max(0, len(items) - 1)


def _filter_estimate(
    name: str, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], cap: int
) -> int | None:
    """The size a growing filter will build, before it runs; None for the others."""
    text = value if isinstance(value, str) else None
    if name == "center":
        width = argument(args, kwargs, 0, "width", 80)
        check_width(width, "a center width")
        return max(size_of(value, cap), width if isinstance(width, int) else 0)
    if name == "indent":
        width = argument(args, kwargs, 0, "width", 4)
        unit = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        check_width(unit, "an indent")
        lines = text.count("\n") + 1 if text is not None else 1
        return size_of(value, cap) + lines * unit
    if name == "wordwrap" and text is not None:
        width = argument(args, kwargs, 0, "width", 79)
        wrap = argument(args, kwargs, 2, "wrapstring", None)
        breaks = len(text) // max(1, width if isinstance(width, int) else 1) + text.count("\n")
        return len(text) + (breaks + 1) * (len(wrap) if isinstance(wrap, str) else 1)
    if name == "replace" and text is not None:
        return replace_size(
            text,
            argument(args, kwargs, 0, "old", None),
            argument(args, kwargs, 1, "new", None),
            argument(args, kwargs, 2, "count", None),
        )
    if name == "format" and text is not None:
        check_percent_format(text)
        return len(text) + size_of(args, cap) + size_of(kwargs, cap)
    if name in ("batch", "slice"):
        amount = argument(args, kwargs, 0, "linecount" if name == "batch" else "slices", 1)
        check_width(amount, f"a {name} size")
    return None


def sized_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` (a filter) counted as an operation and sized before and after it runs."""
    leading = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)
    def sized(*args: Any, **kwargs: Any) -> Any:
        budget = current_budget()
        budget.step()
        cap = budget.limits.max_output_chars
        value = args[leading] if len(args) > leading else None
        rest = args[leading + 1 :]
        if name == "join":
            # Joining builds the sum of the parts: read them once to size it first.
            items = list(value) if isinstance(value, Iterable) else []
            attribute = argument(rest, kwargs, 1, "attribute", None)
            if attribute is None:
                budget.build(join_size(items, argument(rest, kwargs, 0, "d", ""), cap), "join")
            args = (*args[:leading], items, *rest)
        estimate = _filter_estimate(name, value, rest, kwargs, cap)
        if estimate is not None:
            budget.build(estimate, name)
        result = func(*args, **kwargs)
        if result is not value and isinstance(result, str | list | tuple | dict):
            budget.build(size_of(result, cap + 1), name)
        return result

    return sized
