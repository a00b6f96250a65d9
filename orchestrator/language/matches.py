"""Matches as written: an event with a property filter, or a change of segment membership.

Stage goals, exits, the journey's goal and ``wait_for`` steps all match this way; an
experiment's metric is an event only (``EventSpec``). ``_Spec`` is the base of the models of
``spec.py`` and ``touchpoints.py``.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .field_schemas import _not_empty, _present, _text
from .fields import PositiveDuration, PropertyPath, Text, fail
from .property_filters import ConditionSpec

_SEGMENT_ID = "[a-z0-9][a-z0-9_-]{0,63}"


def _segment_id(value: str) -> str:
    if not re.fullmatch(_SEGMENT_ID, value):
        fail(
            "a segment id starts with a lowercase letter or digit, then lowercase letters, "
            f"digits, '_' or '-', at most 64 characters; got {value!r}"
        )
    return value


SegmentId = Annotated[str, AfterValidator(_segment_id), _text(f"^{_SEGMENT_ID}$")]


class _Spec(BaseModel):
    # Field docstrings are read by schema.py, not at import: pydantic's
    # use_attribute_docstrings would add some 50 ms to every import of this module.
    model_config = ConfigDict(frozen=True, extra="forbid")


class EventSpec(_Spec):
    """An event name with an optional property filter (an experiment's metric)."""

    event: Text
    """The event name, exactly as tracked (`Order Completed`)."""
    where: dict[PropertyPath, ConditionSpec] = Field(default_factory=dict)
    """Property filter: each key a dotted property path, each value a plain value (equals) or
    {operator: value} pairs (eq, ne, gt, gte, lt, lte, one_of, exists) that must all hold."""


# The ways a match may be given: an event, or a change of segment membership.
MATCH_KINDS = ("event", "enters_segment", "leaves_segment")


class MatchSpec(_Spec):
    """An event with an optional property filter, or a segment change: the customer starts
    matching a segment (``enters_segment``) or stops matching it (``leaves_segment``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [_present(kind) for kind in MATCH_KINDS],
            "if": _not_empty("where"),
            "then": _present("event"),
        }
    )

    event: Text | None = None
    """The event name, exactly as tracked (`Order Completed`)."""
    where: dict[PropertyPath, ConditionSpec] = Field(default_factory=dict)
    """Property filter on `event`: each key a dotted property path, each value a plain value
    (equals) or {operator: value} pairs (eq, ne, gt, gte, lt, lte, one_of, exists)."""
    enters_segment: SegmentId | None = None
    """Instead of `event`: the customer starts matching this segment or persona (its id)."""
    leaves_segment: SegmentId | None = None
    """Instead of `event`: the customer stops matching this segment or persona (its id)."""

    @model_validator(mode="after")
    def _one_trigger(self) -> MatchSpec:
        given = [kind for kind in MATCH_KINDS if getattr(self, kind) is not None]
        if not given:
            fail("give an event, or enters_segment / leaves_segment with a segment id")
        if len(given) > 1:
            fail(f"give one of {', '.join(given)}, not several")
        if self.where and self.event is None:
            fail("where filters an event's properties; a segment change has none")
        return self


class GoalSpec(MatchSpec):
    """The journey's conversion: ``event`` (or entering a segment) within ``within`` of entry
    ends the run converted."""

    within: PositiveDuration
    """How long after entering the event (or segment change) counts as the conversion."""
