"""What one render may spend, and what it has spent.

A render's ``Budget`` lives in a context variable while it renders, so the sized operations
and the sandbox reach it without a template being able to. Work counts as operations (loop
iterations, calls, filters, the sized operators) and as characters built; format widths and
``range`` lengths are checked before anything is built from them.
"""

from __future__ import annotations

import contextvars
import dataclasses
import re
import string
from collections.abc import Mapping
from typing import Any, Final

from jinja2.exceptions import SecurityError


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


class LimitExceeded(SecurityError):
    """A template went over a ``RenderLimits`` bound."""


class Budget:
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


BUDGET: contextvars.ContextVar[Budget] = contextvars.ContextVar("journeyman_render_budget")


def current_budget() -> Budget:
    found = BUDGET.get(None)
    # Compiling folds constants, which runs filters outside a render: give those a budget too.
    return found if found is not None else Budget(RenderLimits(), {})


def size_of(value: Any, cap: int) -> int:
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


def bounded_range(*args: int) -> range:
    """``range`` for templates: no longer than the operation budget could iterate."""
    numbers = range(*args)
    limit = current_budget().limits.max_operations
    try:
        size = len(numbers)
    except OverflowError:  # longer than the platform can even count
        size = limit + 1
    if size > limit:
        raise LimitExceeded(f"range of {size} numbers is over the limit of {limit}")
    return numbers


def check_width(width: Any, what: str) -> None:
    if isinstance(width, int) and width > MAX_FORMAT_WIDTH:
        raise LimitExceeded(f"{what} of {width} is over the limit of {MAX_FORMAT_WIDTH}")


def check_percent_format(fmt: str) -> None:
    for match in _PERCENT_SPEC.finditer(fmt):
        for group in match.groups():
            if group == "*":
                raise LimitExceeded("'*' widths in % formats are not allowed in templates")
            if group is not None:
                check_width(int(group), "a format width")


def check_brace_format(fmt: str) -> None:
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
            check_width(int(digits), "a format width")
