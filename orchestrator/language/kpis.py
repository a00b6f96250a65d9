"""Goals and KPIs of touchpoints, as written: what each touchpoint is for and how it is measured.

A ``send`` may say what it is for (``goal: conversion``) and how that is measured (``kpi:
{name: orders, event: Order Completed}``); a stage may list the touchpoints the engine does not
send but that matter there (the website, social media, an event, a store) under ``observe``,
each measured by its own KPI. A KPI counts a tracked event, or page or screen views (what
``page`` and ``screen`` calls record, the website's and the app's visits). None of it changes
what a customer goes through: the touchpoints report counts the KPI events
(``journeyman.orchestrator.storage.kpis``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator

from .field_schemas import _NOT_BLANK, _present, _text
from .fields import GoalLabel, Identifier, Label, PropertyPath, Text, fail
from .property_filters import ConditionSpec

# What a KPI may count, each a key of its own.
KPI_SOURCES: tuple[Literal["event", "page", "screen"], ...] = ("event", "page", "screen")


def _view(value: object) -> bool | str:
    if value is True:
        return True
    if isinstance(value, str) and value.strip():
        return value
    fail("give true (every view) or the name the page or screen call sends, like Pricing")


# ``true`` for every view, or the name ``page``/``screen`` calls send.
View = Annotated[
    bool | str,
    PlainValidator(_view),
    WithJsonSchema({"anyOf": [{"const": True}, _text(_NOT_BLANK).json_schema]}),
]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KpiSpec(_Spec):
    """How a touchpoint's goal is measured: a name for reports and what counts one, a tracked
    ``event`` or ``page`` or ``screen`` views, whose properties pass ``where``."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [_present(k) for k in KPI_SOURCES]})

    name: Label
    """What is counted, as reports name it: `orders`, `visits`, `interactions`, `attendees`."""
    event: Text | None = None
    """The tracked event that counts one, exactly as tracked (`Order Completed`)."""
    page: View | None = None
    """Instead of `event`: page views (website visits): `true` for every page, or the page's
    name as the `page` call sends it (`Pricing`)."""
    screen: View | None = None
    """Instead of `event`: screen views in an app: `true` for every screen, or its name."""
    where: dict[PropertyPath, ConditionSpec] = Field(default_factory=dict)
    """Property filter: each key a dotted property path, each value a plain value (equals) or
    {operator: value} pairs (eq, ne, gt, gte, lt, lte, one_of, exists). A page view's
    properties hold its `path`, `url`, `title` and `referrer`."""

    @model_validator(mode="after")
    def _one_source(self) -> KpiSpec:
        given = [source for source in KPI_SOURCES if getattr(self, source) is not None]
        if not given:
            fail("a kpi counts an event, page views (page: true) or screen views (screen: true)")
        if len(given) > 1:
            fail(f"give one of {', '.join(given)}, not several")
        return self


class ObservedSpec(_Spec):
    """A touchpoint the engine does not send (the website, social media, an event, a store),
    measured by its KPI among the customers while they are in the stage."""

    id: Identifier
    """Its name in reports, unique among the journey's step ids: `website`, `launch-event`."""
    goal: GoalLabel | None = None
    """What the touchpoint is for, in a word or two: `traffic`, `engagement`, `awareness`."""
    kpi: KpiSpec
    """How the goal is measured: a `name` (`visits`) and what counts one: an `event`, or
    `page` or `screen` views, with an optional `where`."""
