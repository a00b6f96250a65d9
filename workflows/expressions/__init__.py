"""Conditions over a customer's traits, behaviour and triggering event: parsed, never ``eval``.

``parse`` turns text such as ``profile.age > 60 and count("Order Completed", within: 30d) > 0``
or ``metrics.frequency == "vip"`` into a tree of frozen dataclasses; ``needs`` says which
traits, how much event history and which metrics it reads (``merge_needs`` joins several);
``evaluate`` decides it against a ``Context``. Pure: no I/O, safe in any process.

Errors::

    ValueError
    └── ExpressionError   the condition does not parse (message, 0-based position)

Evaluation never raises for the data it meets: a missing trait or a type mismatch only makes
the comparison false (``!=``, ``not in`` and ``is null`` hold for a missing value).
"""

from .evaluate import Context, StoredEvent, evaluate, evaluate_value
from .syntax import (
    DAYS_SINCE_METRICS,
    METRICS,
    STORED_METRICS,
    Expression,
    ExpressionError,
    Needs,
    merge_needs,
    needs,
    parse,
)

__all__ = [
    "DAYS_SINCE_METRICS",
    "METRICS",
    "STORED_METRICS",
    "Context",
    "Expression",
    "ExpressionError",
    "Needs",
    "StoredEvent",
    "evaluate",
    "evaluate_value",
    "merge_needs",
    "needs",
    "parse",
]
