"""The journey file as written: pydantic models of the YAML surface, before compilation.

Validation errors raised here carry messages meant for the journey's author; the compiler
turns them into diagnostics with file, line and column.

The models are also the Python API (``builder.py``) and the source of the published JSON
Schema (``schema.py``): field docstrings are its help text. What each kind of value accepts,
how it is written back and how the schema describes it lives in ``fields.py``; matches (an
event or a segment change) in ``matches.py``; the touchpoints in ``touchpoints.py``, except the
``send`` step, one model per channel, in ``sends.py``; goals, KPIs and observed touchpoints in
``kpis.py``. This module holds the journey, its entry, stages and delivery settings, and names
the models of ``matches.py`` and ``touchpoints.py`` too (``__all__``), so that the models of a
journey file can all be imported from here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from journeyman.orchestrator.scheduling.cron import Cron, CronError
from journeyman.workflows.plan import Reentry

from .field_schemas import _INSTANT_TEXT, _cron_json, _not_empty, _present
from .fields import (
    Clock,
    Count,
    DwellAction,
    Flag,
    Identifier,
    JourneyId,
    Percent,
    PositiveDuration,
    PropertyPath,
    ReentrySpec,
    Text,
    TimeZone,
    TraitPath,
    fail,
)
from .kpis import ObservedSpec
from .matches import MATCH_KINDS, EventSpec, GoalSpec, MatchSpec, SegmentId, _Spec
from .property_filters import ConditionSpec
from .send_fields import ChannelName
from .sends import TemplateSpec
from .touchpoints import (
    BranchSpec,
    CaseSpec,
    DecideSpec,
    ExitValue,
    ExperimentSpec,
    Increment,
    MetricSpec,
    Paths,
    PathSpec,
    TouchpointSpec,
    TraitValue,
    UpdateSpec,
    WaitForSpec,
    WaitSpec,
    WaitUntilSpec,
)

__all__ = [
    "MATCH_KINDS",
    "BranchSpec",
    "CapSpec",
    "CaseSpec",
    "CronText",
    "DecideSpec",
    "DefaultsSpec",
    "EntrySpec",
    "EventSpec",
    "ExitValue",
    "ExperimentSpec",
    "FrequencyCapSpec",
    "GoalSpec",
    "Increment",
    "Instant",
    "JourneySpec",
    "MatchSpec",
    "MetricSpec",
    "PathSpec",
    "Paths",
    "QuietHoursSpec",
    "ScheduleSpec",
    "SegmentId",
    "StageSpec",
    "TouchpointSpec",
    "TraitValue",
    "UpdateSpec",
    "WaitForSpec",
    "WaitSpec",
    "WaitUntilSpec",
]


class StageSpec(_Spec):
    """A lifecycle stage: its goal, its touchpoints and how long a customer may stay."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [_present("goal"), _not_empty("touchpoints")]}
    )

    name: Identifier
    """Unique in the journey; a `goto` target."""
    goal: MatchSpec | None = None
    """The event (or segment change) that converts the customer to the next stage, whatever
    touchpoint they are at."""
    max_dwell: PositiveDuration | None = None
    """Longest stay in the stage; 30 days by default for a stage with a goal."""
    on_max_dwell: DwellAction | None = None
    """When max_dwell passes: `exit` the journey (the default) or `continue` to the next stage."""
    observe: list[ObservedSpec] = Field(default_factory=list)
    """Touchpoints the engine does not send but that matter in this stage (the website, social
    media, an event, a store), each with a goal and the KPI that measures it."""
    touchpoints: list[TouchpointSpec] = Field(default_factory=list)
    """The touchpoints, run in order."""

    @model_validator(mode="after")
    def _does_something(self) -> StageSpec:
        if self.goal is None and not self.touchpoints:
            fail(f"stage '{self.name}' needs a goal or at least one touchpoint")
        return self


class DefaultsSpec(_Spec):
    """Settings for every stage that does not set its own."""

    max_dwell: PositiveDuration | None = None
    """Longest stay in a stage."""
    on_max_dwell: DwellAction | None = None
    """When max_dwell passes: `exit` the journey or `continue` to the next stage."""


class CapSpec(_Spec):
    """Most entrants; customers over a cap do not enter."""

    total: Count | None = Field(default=None, gt=0)
    """Most entrants ever."""
    per_day: Count | None = Field(default=None, gt=0)
    """Most entrants per day (UTC)."""


def _cron(value: str) -> str:
    try:
        Cron.parse(value)
    except CronError as exc:
        fail(str(exc))
    return value


def _instant(value: object) -> datetime:
    moment: object = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            moment = None
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        fail(f"'at' is an ISO date and time with a zone, like 2026-12-01T09:00:00Z; got {value!r}")
    return moment


CronText = Annotated[str, AfterValidator(_cron), _cron_json()]
Instant = Annotated[
    datetime, PlainValidator(_instant), WithJsonSchema({"type": "string", "pattern": _INSTANT_TEXT})
]


class ScheduleSpec(_Spec):
    """Admit an ``audience`` (a condition; everyone without one) on a cron, or once ``at``."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [_present("cron"), _present("at")]})

    cron: CronText | None = None
    """Five fields, "MIN HOUR DAY MONTH WEEKDAY", in `timezone`: `0 9 * * mon`."""
    at: Instant | None = None
    """Once, at an ISO date and time with a zone: `2026-12-01T09:00:00Z`."""
    timezone: TimeZone = "UTC"
    """IANA time zone of the cron expression."""
    audience: Text | None = None
    """A condition over each profile; everyone without one."""

    @model_validator(mode="after")
    def _one_time_rule(self) -> ScheduleSpec:
        if (self.cron is None) == (self.at is None):
            fail('a schedule has either cron: "MIN HOUR DAY MONTH WEEKDAY" or at: DATETIME')
        return self


class EntrySpec(_Spec):
    """Who enters: customers sending ``event`` (matching ``where``) or starting to match a
    ``segment``, by API call, and/or an audience on a ``schedule``."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                _present("event"),
                _present("segment"),
                {"required": ["api"], "properties": {"api": {"const": True}}},
                _present("schedule"),
            ],
            "not": {"allOf": [_present("event"), _present("segment")]},
            "if": _not_empty("where"),
            "then": _present("event"),
        }
    )

    event: Text | None = None
    """The event that brings a customer in."""
    where: dict[PropertyPath, ConditionSpec] = Field(default_factory=dict)
    """Property filter on the entry event (needs `event`)."""
    segment: SegmentId | None = None
    """Instead of `event`: customers enter when they start matching this segment or persona
    (its id, from the files in `segments/`)."""
    api: Flag = False
    """true: customers can also be entered by an API call."""
    schedule: ScheduleSpec | None = None
    """Admit an audience on a cron schedule, or once at a date and time."""
    reentry: ReentrySpec = Field(default_factory=Reentry)
    """`once` (the default), {after: DURATION} (again after a cool-down) or
    {concurrent: PROPERTY} (one run at a time per value of an entry event property)."""
    cap: CapSpec | None = None
    """Most entrants, in total and per day."""
    holdout: Percent = 0.0
    """A control group that never gets a message: `10%` or `2.5`, from 0 to below 100."""

    @model_validator(mode="after")
    def _some_way_in(self) -> EntrySpec:
        if self.event is not None and self.segment is not None:
            fail("entry takes an event or a segment, not both")
        if self.event is None and self.segment is None and not self.api and self.schedule is None:
            fail(
                "entry needs an event, a segment, api: true (customers entered by API call),"
                " or a schedule"
            )
        if self.event is None and self.where:
            if self.segment is not None:
                fail("where filters the entry event; a segment entry has none")
            fail("where filters the entry event; add event")
        return self


class QuietHoursSpec(_Spec):
    """Local hours when no message goes out; they may span midnight."""

    start: Clock
    """Start, "HH:MM" in the customer's local time."""
    end: Clock
    """End, "HH:MM" in the customer's local time."""
    action: Literal["defer", "skip"] = "defer"
    """`defer` (send when the quiet hours end) or `skip` (drop the message)."""


class FrequencyCapSpec(_Spec):
    """Most messages a customer gets on a channel in a period, counted across journeys."""

    channel: ChannelName
    """The channel counted: `email`, `sms`, `push`, `in_app` or `webhook`."""
    limit: Count = Field(gt=0)
    """Most messages in the period."""
    per: PositiveDuration
    """The period: `1d`, `1w`."""


class JourneySpec(_Spec):
    """A whole journey file."""

    id: JourneyId
    """Stable identifier: a lowercase letter or digit, then a-z 0-9 _ -, at most 64."""
    name: Text
    """Human name shown in reports."""
    entry: EntrySpec
    """Who enters, and how often."""
    goal: GoalSpec | None = None
    """The journey's conversion: an event (or entering a segment) within a time of entering
    ends the run converted."""
    exit: list[MatchSpec] = Field(default_factory=list)
    """Events (or segment changes) that end the customer's run at once."""
    timezone: TimeZone | None = None
    """IANA time zone for customers whose profile has none; UTC otherwise."""
    quiet_hours: QuietHoursSpec | None = None
    """Local hours when no message goes out."""
    frequency_caps: list[FrequencyCapSpec] = Field(default_factory=list)
    """Most messages per channel and period, counted across all journeys."""
    throttle: Count | None = Field(default=None, gt=0)
    """Most messages this journey sends per minute."""
    priority: Count = Field(default=3, ge=1, le=5)
    """1 (most urgent) to 5."""
    traits: list[TraitPath] = Field(default_factory=list)
    """Profile traits that branch conditions may read, besides the well-known ones."""
    templates: dict[Identifier, TemplateSpec] = Field(default_factory=dict)
    """Named email content that send steps use by name."""
    defaults: DefaultsSpec | None = None
    """max_dwell and on_max_dwell for every stage that does not set its own."""
    stages: list[StageSpec] = Field(min_length=1)
    """The stages, in lifecycle order (at least one)."""
