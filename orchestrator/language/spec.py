"""The journey file as written: pydantic models of the YAML surface, before compilation.

Validation errors raised here carry messages meant for the journey's author; the compiler
turns them into diagnostics with file, line and column.

The models are also the Python API (``builder.py``) and the source of the published JSON
Schema (``schema.py``): field docstrings are its help text. What each kind of value accepts,
how it is written back and how the schema describes it lives in ``fields.py``; the ``send``
step, one model per channel, in ``sends.py``; goals, KPIs and observed touchpoints in
``kpis.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    WithJsonSchema,
    model_validator,
)

from journeyman.orchestrator.scheduling.cron import Cron, CronError
from journeyman.workflows.plan import Reentry, Scalar, Weekday

from .fields import (
    _INSTANT_TEXT,
    _NOT_BLANK,
    TOUCHPOINT_KINDS,
    ChannelName,
    Clock,
    ConditionSpec,
    Count,
    DwellAction,
    Flag,
    Fraction,
    Identifier,
    JourneyId,
    Percent,
    PositiveDuration,
    PropertyPath,
    ReentrySpec,
    SignedDuration,
    Text,
    TimeZone,
    TraitPath,
    WaitDuration,
    _cron_json,
    _exit,
    _increment,
    _not_empty,
    _present,
    _scalar_json,
    _text,
    _trait_value,
    fail,
)
from .kpis import ObservedSpec
from .sends import SendSpec, TemplateSpec

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


class WaitUntilSpec(_Spec):
    """Wait until a local time of day (``until``), or a date held in a trait (``until_date``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [_present("until"), _present("until_date")],
            "if": _present("until"),
            "then": {
                "properties": {
                    "offset": {"anyOf": [{"const": 0}, {"type": "string", "pattern": "^[^1-9]*$"}]},
                    "at": {"const": "09:00"},
                    "yearly": {"const": False},
                }
            },
            "else": {"properties": {"weekdays": {"type": "null"}}},
        }
    )

    until: Clock | None = None
    """A time of day, "HH:MM" on a 24-hour clock, in the customer's local time."""
    weekdays: list[Weekday] | None = Field(default=None, min_length=1)
    """With `until`: the days it may be (mon ... sun); every day by default."""
    until_date: TraitPath | None = None
    """A trait holding a date (`"1990-04-21"` or a date-time), such as `birthday`."""
    offset: SignedDuration = 0
    """With `until_date`: a duration before (starting with `-`) or after the date."""
    at: Clock = "09:00"
    """With `until_date`: the time of day, "HH:MM", local time."""
    yearly: Flag = False
    """With `until_date`: true for the next anniversary (birthdays, renewals)."""

    @model_validator(mode="after")
    def _one_target(self) -> WaitUntilSpec:
        if (self.until is None) == (self.until_date is None):
            fail('a timed wait has either until: "HH:MM" or until_date: TRAIT')
        if self.until_date is None and (self.offset or self.yearly or self.at != "09:00"):
            fail("offset, at and yearly go with until_date")
        if self.until is None and self.weekdays is not None:
            fail("weekdays go with until")
        return self


def _wait_kind(value: object) -> str:
    # A WaitUntilSpec instance comes from Python code, and from serializing a validated wait.
    return "@timed" if isinstance(value, dict | WaitUntilSpec) else "@duration"


WaitSpec = Annotated[
    Annotated[WaitDuration, Tag("@duration")] | Annotated[WaitUntilSpec, Tag("@timed")],
    Discriminator(_wait_kind),
]


class WaitForSpec(MatchSpec):
    """Pause until an event arrives or a segment changes (``on_event``); after ``timeout``,
    run ``on_timeout``."""

    timeout: PositiveDuration
    """How long to wait for the event or segment change (more than zero)."""
    lookback: WaitDuration = 0
    """Events up to this long before the step count too."""
    on_event: list[TouchpointSpec] = Field(default_factory=list)
    """Touchpoints to run when the event (or segment change) came."""
    on_timeout: list[TouchpointSpec] = Field(default_factory=list)
    """Touchpoints to run when the timeout passed first."""


class CaseSpec(_Spec):
    """One case of a branch: its touchpoints run when its condition holds."""

    when: Text
    """A condition over `profile`, past events and `event`, e.g. `profile.tier == "gold"`."""
    then: list[TouchpointSpec] = Field(default_factory=list)
    """Touchpoints to run when the condition holds."""


class BranchSpec(_Spec):
    """The first case whose condition holds runs; otherwise ``otherwise``."""

    cases: list[CaseSpec] = Field(min_length=1)
    """Cases tried in order; the first that holds runs."""
    otherwise: list[TouchpointSpec] = Field(default_factory=list)
    """Touchpoints to run when no case holds."""


class PathSpec(_Spec):
    """One path of a split or variant of an experiment, taken with probability weight/total."""

    name: Identifier
    """Unique among the paths; part of the ids of its touchpoints."""
    weight: Count = Field(gt=0, le=1_000_000)
    """A whole number, more than zero."""
    then: list[TouchpointSpec] = Field(default_factory=list)
    """Touchpoints of this path."""


def _unique_names(paths: list[PathSpec]) -> list[PathSpec]:
    # A path's name is part of its steps' ids: two paths with one name would share ids.
    names = [path.name for path in paths]
    for name in names:
        if names.count(name) > 1:
            fail(f"path name {name!r} is used twice; each path needs its own name")
    return paths


Paths = Annotated[list[PathSpec], AfterValidator(_unique_names)]


class MetricSpec(EventSpec):
    """An experiment's success: the event arriving ``within`` of entering the experiment."""

    within: PositiveDuration
    """How long after entering the experiment the event counts."""


class DecideSpec(_Spec):
    """When and how an experiment picks its winner."""

    after: PositiveDuration
    """Time since the first customer entered before a winner may be picked."""
    min_per_variant: Count = Field(default=100, gt=0)
    """Customers every variant needs first."""
    confidence: Fraction = Field(default=0.95, gt=0.5, lt=1)
    """How sure a variant must be to beat the control (above 0.5, below 1)."""


class ExperimentSpec(_Spec):
    """A/B/n test: split by weight, measure ``metric``, and with ``decide`` pick a winner."""

    variants: Paths = Field(min_length=2)
    """At least two variants, each with a unique name."""
    control: Identifier
    """The name of the variant to beat."""
    metric: MetricSpec
    """The event counted as a success, `within` a time of entering the experiment."""
    decide: DecideSpec | None = None
    """When to pick a winner; without it the experiment keeps splitting by weight."""

    @model_validator(mode="after")
    def _control_is_a_variant(self) -> ExperimentSpec:
        names = [variant.name for variant in self.variants]
        if self.control not in names:
            fail(f"control {self.control!r} is not one of the variants ({', '.join(names)})")
        return self


TraitValue = Annotated[Scalar, PlainValidator(_trait_value), WithJsonSchema(_scalar_json())]
Increment = Annotated[int | float, PlainValidator(_increment), WithJsonSchema({"type": "number"})]


class UpdateSpec(_Spec):
    """Change the customer's profile: set traits, increment numbers, add tags."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [_not_empty("set"), _not_empty("increment"), _not_empty("tags")]
        }
    )

    set: dict[TraitPath, TraitValue] = Field(default_factory=dict)
    """Traits (names or dotted paths) to set to a string, number, boolean or null."""
    increment: dict[TraitPath, Increment] = Field(default_factory=dict)
    """Traits to add a number to (negative to subtract)."""
    tags: list[Identifier] = Field(default_factory=list)
    """Tags to add."""

    @model_validator(mode="after")
    def _does_something(self) -> UpdateSpec:
        if not (self.set or self.increment or self.tags):
            fail("an update sets, increments or tags something")
        return self


ExitValue = Annotated[
    bool | str,
    PlainValidator(_exit),
    WithJsonSchema({"anyOf": [{"const": True}, _text(_NOT_BLANK).json_schema]}),
]


def _touchpoint_json(schema: dict[str, Any]) -> None:
    # Exactly one kind, never null (`send:` with nothing under it), one id at most.
    for kind in TOUCHPOINT_KINDS:
        field = schema["properties"][kind]
        field.pop("default", None)
        options = [option for option in field.pop("anyOf") if option != {"type": "null"}]
        field.update(options[0] if len(options) == 1 else {"anyOf": options})
    schema["oneOf"] = [{"required": [kind]} for kind in TOUCHPOINT_KINDS]
    send_id = {"required": ["send"], "properties": {"send": _present("id")}}
    schema["not"] = {"allOf": [_present("id"), send_id]}


class TouchpointSpec(_Spec):
    """One list item under ``touchpoints``: exactly one step kind, with an optional ``id``."""

    model_config = ConfigDict(json_schema_extra=_touchpoint_json)

    id: Identifier | None = None
    """Step id, unique in the journey: a `goto` target, shown in reports and logs."""
    send: SendSpec | None = None
    """Send a message: an email (the default), or on `channel` sms, push, in_app or webhook."""
    wait: WaitSpec | None = None
    """Pause: a duration (`2d`), or until a time of day or a date held in a trait."""
    wait_for: WaitForSpec | None = None
    """Pause until an event arrives, at most `timeout`."""
    branch: BranchSpec | None = None
    """Run the first case whose condition holds, else `otherwise`."""
    split: Paths | None = Field(default=None, min_length=2)
    """Random paths by weight (at least two); a customer always takes the same one."""
    experiment: ExperimentSpec | None = None
    """A/B/n test of variants against a control, with a winner picked on a metric."""
    update: UpdateSpec | None = None
    """Change the customer's profile."""
    goto: Identifier | None = None
    """Jump to a stage (its first touchpoint) or to a step id."""
    exit: ExitValue | None = None
    """Leave the journey: `true`, or the reason as text, shown in reports."""

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data  # pydantic reports the wrong type
        kinds = [kind for kind in TOUCHPOINT_KINDS if kind in data]
        if not kinds:
            found = ", ".join(repr(key) for key in data) or "nothing"
            fail(f"a touchpoint is one of {', '.join(TOUCHPOINT_KINDS)}; got {found}")
        if len(kinds) > 1:
            fail(f"put {' and '.join(kinds)} in separate touchpoints (one '- ' item each)")
        if data[kinds[0]] is None:
            extra = [key for key in data if key not in (kinds[0], "id")]
            hint = "; indent the keys that belong under it" if extra else ""
            fail(f"'{kinds[0]}' has no value{hint}")
        if kinds[0] == "exit" and data["exit"] is False:
            fail("exit: true ends the run here; remove the step to keep going")
        if isinstance(data.get("wait"), dict) and not data["wait"]:
            fail("'wait' has no value")
        return data

    @model_validator(mode="after")
    def _one_id(self) -> TouchpointSpec:
        if self.id is not None and self.send is not None and self.send.id is not None:
            fail("give the step one id: either beside send or inside it")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in TOUCHPOINT_KINDS if getattr(self, k) is not None)

    @property
    def step_id(self) -> str | None:
        if self.send is not None and self.send.id is not None:
            return self.send.id
        return self.id

    def nested(self) -> Iterator[tuple[list[TouchpointSpec], tuple[str | int, ...]]]:
        """The touchpoint lists this touchpoint holds, with their places under it."""
        if self.wait_for is not None:
            yield self.wait_for.on_event, ("wait_for", "on_event")
            yield self.wait_for.on_timeout, ("wait_for", "on_timeout")
        if self.branch is not None:
            for n, case in enumerate(self.branch.cases):
                yield case.then, ("branch", "cases", n, "then")
            yield self.branch.otherwise, ("branch", "otherwise")
        for n, route in enumerate(self.split or []):
            yield route.then, ("split", n, "then")
        if self.experiment is not None:
            for n, route in enumerate(self.experiment.variants):
                yield route.then, ("experiment", "variants", n, "then")


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


class GoalSpec(MatchSpec):
    """The journey's conversion: ``event`` (or entering a segment) within ``within`` of entry
    ends the run converted."""

    within: PositiveDuration
    """How long after entering the event (or segment change) counts as the conversion."""


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


WaitForSpec.model_rebuild()
CaseSpec.model_rebuild()
BranchSpec.model_rebuild()
PathSpec.model_rebuild()
ExperimentSpec.model_rebuild()
TouchpointSpec.model_rebuild()
