"""The journey file as written: pydantic models of the YAML surface, before compilation.

Validation errors raised here carry messages meant for the journey's author; the compiler
turns them into diagnostics with file, line and column.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal, NamedTuple, NoReturn

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Strict,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

from journeyman.orchestrator.scheduling.cron import Cron, CronError
from journeyman.workflows import local_time
from journeyman.workflows.plan import Operator, Reentry, Scalar, Weekday

from .durations import DurationError, parse_duration

OPERATORS: tuple[Operator, ...] = ("eq", "ne", "gt", "gte", "lt", "lte", "one_of", "exists")
TOUCHPOINT_KINDS = (
    "send",
    "wait",
    "wait_for",
    "branch",
    "split",
    "experiment",
    "update",
    "goto",
    "exit",
)
CHANNELS: tuple[str, ...] = ("email",)
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_TRAIT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

_IDENTIFIER = re.compile(r"[a-z0-9_-]{1,64}")
_LOCALE = re.compile(r"[a-z]{2,8}(-[a-z0-9]{1,8})*")
_JOURNEY_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_PATH_PART = re.compile(r"[^.\s]+")
_TEMPLATES = SandboxedEnvironment()


def fail(message: str) -> NoReturn:
    """Raise a validation error whose text is exactly ``message``."""
    # The message goes through the context: pydantic would format braces in a template.
    raise PydanticCustomError("journey", "{message}", {"message": message})


def _journey_id(value: str) -> str:
    if not _JOURNEY_ID.fullmatch(value):
        fail(
            "a journey id starts with a lowercase letter or digit, then lowercase letters, "
            f"digits, '_' or '-', at most 64 characters; got {value!r}"
        )
    return value


def _identifier(value: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        fail(f"use lowercase letters, digits, '_' or '-' (at most 64 characters); got {value!r}")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        fail("must not be empty")
    return value


def _property_path(value: str) -> str:
    if not all(_PATH_PART.fullmatch(part) for part in value.split(".")):
        fail(f"a property path is names joined by dots, without spaces; got {value!r}")
    return value


def _template(value: str) -> str:
    try:
        _TEMPLATES.parse(value)
    except TemplateSyntaxError as exc:
        raise PydanticCustomError(
            "template",
            "template syntax error: {detail}",
            {"detail": exc.message or "invalid template", "template_line": exc.lineno},
        ) from None
    except RecursionError:
        fail("the template nests too deeply")
    return value


def _single_line(value: str) -> str:
    if "\n" in value.strip():
        fail("a subject must be a single line")
    return value


def _clock(value: object) -> str:
    if not isinstance(value, str) or not _CLOCK.fullmatch(value):
        # YAML 1.1 reads an unquoted 9:00 or 21:00 as sexagesimal 540 or 1260 (never below 60).
        hint = ""
        if isinstance(value, int) and not isinstance(value, bool) and 60 <= value < 1440:
            hours, minutes = divmod(value, 60)
            hint = f", which is how YAML reads an unquoted {hours}:{minutes:02d}; quote it: "
            hint += f'"{hours:02d}:{minutes:02d}"'
        fail(f'a time of day is "HH:MM" on a 24-hour clock, like "09:00"; got {value!r}{hint}')
    return value


def _channel(value: object) -> str:
    if value not in CHANNELS:
        fail(f"unknown channel {value!r}; available: {', '.join(CHANNELS)}")
    assert isinstance(value, str)
    return value


def _locale(value: str) -> str:
    # SendStep.content_for compares lowercase tags with '-': "pt_br" would never be chosen.
    if not _LOCALE.fullmatch(value):
        fail(f"a locale is a lowercase language tag like fr, fr-ca or pt-br; got {value!r}")
    return value


def _timezone(value: str) -> str:
    if local_time.zone_for(value).key != value:
        fail(f"unknown time zone {value!r}; use an IANA name such as Europe/Paris")
    return value


def _trait_path(value: str) -> str:
    if not _TRAIT_PATH.fullmatch(value):
        fail(f"a trait is a name or dotted path like address.city; got {value!r}")
    return value


def _signed_duration(value: object) -> int:
    negative = isinstance(value, str) and value.strip().startswith("-")
    text = value.strip()[1:] if isinstance(value, str) and negative else value
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        negative, text = True, -value
    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        # Name the value as written, not the text left once its '-' is taken off.
        detail = str(exc).replace(f"got {text!r}", f"got {value!r}")
        fail(f"{detail} (an offset may start with '-')")
    return -seconds if negative else seconds


def _percent(value: object) -> float:
    number: object = value
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1])
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number < 100:
        fail(f"a share is a percentage from 0 to below 100, like 10% or 2.5; got {value!r}")
    return float(number)


def _reentry(value: object) -> Reentry:
    if value == "once":
        return Reentry()
    if isinstance(value, dict) and len(value) == 1:
        ((mode, operand),) = value.items()
        if mode == "after":
            return Reentry(mode="after", cooldown_seconds=_seconds(operand, 1))
        if mode == "concurrent" and isinstance(operand, str):
            return Reentry(mode="concurrent", key=_property_path(operand))
    fail(
        "reentry is 'once', {after: DURATION} (again after a cool-down) or"
        " {concurrent: PROPERTY} (one run per value of an entry event property)"
    )


def _seconds(value: object, minimum: int) -> int:
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        fail(str(exc))
    if seconds < minimum:
        fail("must be longer than zero")
    return seconds


def _exit(value: object) -> bool | str:
    if value is True:
        return True
    if isinstance(value, str) and value.strip():
        return value
    fail("exit is true, or the reason as text")


def _increment(value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        fail(f"an increment is a number, like 1 or -2.5; got {value!r}")
    return value


def _trait_value(value: object) -> Scalar:
    if isinstance(value, list | dict):
        fail("a trait value is a string, number, boolean or null; got a list or mapping")
    return _scalar(value, "a trait value")


def _wait_kind(value: object) -> str:
    return "@timed" if isinstance(value, dict) else "@duration"


# Tags of tagged unions: they appear in validation locations and are dropped from error paths.
UNION_TAGS = frozenset({"@timed", "@duration"})


def _duration(minimum: int) -> PlainValidator:
    return PlainValidator(lambda value: _seconds(value, minimum))


class Condition(NamedTuple):
    """One property test as written: an operator and its operand."""

    op: Operator
    value: Scalar | list[Scalar]


def _scalar(value: object, what: str) -> Scalar:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            fail(f"{what} must be a finite number")
        return value
    if isinstance(value, list | dict):
        fail(f"{what} must be a single value; to match any of several, use {{one_of: [...]}}")
    # YAML turns unquoted dates and times into objects an event property can never equal.
    fail(f"{what} must be a string, number, boolean or null; quote {value!s} to use it as text")


def _number(value: object, op: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        fail(f"'{op}' compares with a number; got {value!r}")
    return value


def _conditions(raw: object) -> tuple[Condition, ...]:
    """A value (``eq``), or ``{operator: value}`` pairs that must all hold, like a range."""
    if not isinstance(raw, dict):
        return (Condition("eq", _scalar(raw, "a property value")),)
    if not raw:
        fail("a condition is a value or {operator: value} pairs, e.g. {gte: 10, lt: 20}")
    return tuple(_condition(op, operand) for op, operand in raw.items())


def _condition(op: object, operand: object) -> Condition:
    if op not in OPERATORS:
        fail(f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
    if op in ("eq", "ne"):
        return Condition(op, _scalar(operand, f"the '{op}' operand"))
    if op == "one_of":
        if not isinstance(operand, list) or not operand:
            fail("'one_of' takes a non-empty list of values")
        return Condition(op, [_scalar(item, "each 'one_of' item") for item in operand])
    if op == "exists":
        if not isinstance(operand, bool):
            fail(f"'exists' takes true or false; got {operand!r}")
        return Condition(op, operand)
    return Condition(op, _number(operand, op))


JourneyId = Annotated[str, AfterValidator(_journey_id)]
Identifier = Annotated[str, AfterValidator(_identifier)]
Locale = Annotated[str, AfterValidator(_locale)]
Text = Annotated[str, AfterValidator(_not_blank)]
PropertyPath = Annotated[str, AfterValidator(_property_path)]
TraitPath = Annotated[str, AfterValidator(_trait_path)]
Template = Annotated[str, AfterValidator(_not_blank), AfterValidator(_template)]
Subject = Annotated[Template, AfterValidator(_single_line)]
WaitDuration = Annotated[int, _duration(0)]
PositiveDuration = Annotated[int, _duration(1)]
SignedDuration = Annotated[int, PlainValidator(_signed_duration)]
ConditionSpec = Annotated[tuple[Condition, ...], PlainValidator(_conditions)]
Clock = Annotated[str, PlainValidator(_clock)]
ChannelName = Annotated[str, PlainValidator(_channel)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
Percent = Annotated[float, PlainValidator(_percent)]
ReentrySpec = Annotated[Reentry, PlainValidator(_reentry)]
# Strict: YAML reads yes/no/on/off as booleans, which must not pass for 1 and 0 (or "5" for 5).
Count = Annotated[int, Strict()]
Flag = Annotated[bool, Strict()]
Fraction = Annotated[float, Strict()]
DwellAction = Literal["exit", "continue"]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EventSpec(_Spec):
    """An event name with an optional property filter (entry, goal, exit, wait_for)."""

    event: Text
    where: dict[PropertyPath, ConditionSpec] = Field(default_factory=dict)


class ContentSpec(_Spec):
    """An email's subject and body (text, optional HTML), as jinja2 templates."""

    subject: Subject
    body: Template
    html: Template | None = None


class TemplateSpec(ContentSpec):
    """A named template, with optional per-locale variants ("fr", "pt-br")."""

    locales: dict[Locale, ContentSpec] = Field(default_factory=dict)


class SendSpec(_Spec):
    """A message to the customer: inline content, or a named ``template``."""

    id: Identifier | None = None
    channel: ChannelName = "email"
    template: Identifier | None = None
    subject: Subject | None = None
    body: Template | None = None
    html: Template | None = None
    locales: dict[Locale, ContentSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _content(self) -> SendSpec:
        inline = self.subject is not None or self.body is not None
        if self.template is not None and (inline or self.locales or self.html is not None):
            fail("use either template or subject/body/html/locales, not both")
        if self.template is None and (self.subject is None or self.body is None):
            fail("a send needs a subject and a body, or a template")
        return self


class WaitUntilSpec(_Spec):
    """Wait until a local time of day (``until``), or a date held in a trait (``until_date``)."""

    until: Clock | None = None
    weekdays: list[Weekday] | None = Field(default=None, min_length=1)
    until_date: TraitPath | None = None
    offset: SignedDuration = 0
    at: Clock = "09:00"
    yearly: Flag = False

    @model_validator(mode="after")
    def _one_target(self) -> WaitUntilSpec:
        if (self.until is None) == (self.until_date is None):
            fail('a timed wait has either until: "HH:MM" or until_date: TRAIT')
        if self.until_date is None and (self.offset or self.yearly or self.at != "09:00"):
            fail("offset, at and yearly go with until_date")
        if self.until is None and self.weekdays is not None:
            fail("weekdays go with until")
        return self


WaitSpec = Annotated[
    Annotated[WaitDuration, Tag("@duration")] | Annotated[WaitUntilSpec, Tag("@timed")],
    Discriminator(_wait_kind),
]


class WaitForSpec(EventSpec):
    """Pause until an event arrives (``on_event``); after ``timeout``, run ``on_timeout``."""

    timeout: PositiveDuration
    lookback: WaitDuration = 0
    on_event: list[TouchpointSpec] = Field(default_factory=list)
    on_timeout: list[TouchpointSpec] = Field(default_factory=list)


class CaseSpec(_Spec):
    when: Text
    then: list[TouchpointSpec] = Field(default_factory=list)


class BranchSpec(_Spec):
    """The first case whose condition holds runs; otherwise ``otherwise``."""

    cases: list[CaseSpec] = Field(min_length=1)
    otherwise: list[TouchpointSpec] = Field(default_factory=list)


class PathSpec(_Spec):
    name: Identifier
    weight: Count = Field(gt=0, le=1_000_000)
    then: list[TouchpointSpec] = Field(default_factory=list)


def _unique_names(paths: list[PathSpec]) -> list[PathSpec]:
    # A path's name is part of its steps' ids: two paths with one name would share ids.
    names = [path.name for path in paths]
    for name in names:
        if names.count(name) > 1:
            fail(f"path name {name!r} is used twice; each path needs its own name")
    return paths


Paths = Annotated[list[PathSpec], AfterValidator(_unique_names)]


class MetricSpec(EventSpec):
    within: PositiveDuration


class DecideSpec(_Spec):
    after: PositiveDuration
    min_per_variant: Count = Field(default=100, gt=0)
    confidence: Fraction = Field(default=0.95, gt=0.5, lt=1)


class ExperimentSpec(_Spec):
    variants: Paths = Field(min_length=2)
    control: Identifier
    metric: MetricSpec
    decide: DecideSpec | None = None

    @model_validator(mode="after")
    def _control_is_a_variant(self) -> ExperimentSpec:
        names = [variant.name for variant in self.variants]
        if self.control not in names:
            fail(f"control {self.control!r} is not one of the variants ({', '.join(names)})")
        return self


class UpdateSpec(_Spec):
    set: dict[TraitPath, Annotated[Scalar, PlainValidator(_trait_value)]] = Field(
        default_factory=dict
    )
    increment: dict[TraitPath, Annotated[int | float, PlainValidator(_increment)]] = Field(
        default_factory=dict
    )
    tags: list[Identifier] = Field(default_factory=list)

    @model_validator(mode="after")
    def _does_something(self) -> UpdateSpec:
        if not (self.set or self.increment or self.tags):
            fail("an update sets, increments or tags something")
        return self


class TouchpointSpec(_Spec):
    """One list item under ``touchpoints``: exactly one step kind, with an optional ``id``."""

    id: Identifier | None = None
    send: SendSpec | None = None
    wait: WaitSpec | None = None
    wait_for: WaitForSpec | None = None
    branch: BranchSpec | None = None
    split: Paths | None = Field(default=None, min_length=2)
    experiment: ExperimentSpec | None = None
    update: UpdateSpec | None = None
    goto: Identifier | None = None
    exit: Annotated[bool | str, PlainValidator(_exit)] | None = None

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


class StageSpec(_Spec):
    """A lifecycle stage: its goal, its touchpoints and how long a customer may stay."""

    name: Identifier
    goal: EventSpec | None = None
    max_dwell: PositiveDuration | None = None
    on_max_dwell: DwellAction | None = None
    touchpoints: list[TouchpointSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _does_something(self) -> StageSpec:
        if self.goal is None and not self.touchpoints:
            fail(f"stage '{self.name}' needs a goal or at least one touchpoint")
        return self


class DefaultsSpec(_Spec):
    """Settings for every stage that does not set its own."""

    max_dwell: PositiveDuration | None = None
    on_max_dwell: DwellAction | None = None


class CapSpec(_Spec):
    total: Count | None = Field(default=None, gt=0)
    per_day: Count | None = Field(default=None, gt=0)


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


class ScheduleSpec(_Spec):
    """Admit an ``audience`` (a condition; everyone without one) on a cron, or once ``at``."""

    cron: Annotated[str, AfterValidator(_cron)] | None = None
    at: Annotated[datetime, PlainValidator(_instant)] | None = None
    timezone: TimeZone = "UTC"
    audience: Text | None = None

    @model_validator(mode="after")
    def _one_time_rule(self) -> ScheduleSpec:
        if (self.cron is None) == (self.at is None):
            fail('a schedule has either cron: "MIN HOUR DAY MONTH WEEKDAY" or at: DATETIME')
        return self


class EntrySpec(_Spec):
    """Who enters: customers sending ``event`` (matching ``where``), by API call, and/or an
    audience on a ``schedule``."""

    event: Text | None = None
    where: dict[PropertyPath, ConditionSpec] = Field(default_factory=dict)
    api: Flag = False
    schedule: ScheduleSpec | None = None
    reentry: ReentrySpec = Field(default_factory=Reentry)
    cap: CapSpec | None = None
    holdout: Percent = 0.0

    @model_validator(mode="after")
    def _some_way_in(self) -> EntrySpec:
        if self.event is None and not self.api and self.schedule is None:
            fail("entry needs an event, api: true (customers entered by API call), or a schedule")
        if self.event is None and self.where:
            fail("where filters the entry event; add event")
        return self


class GoalSpec(EventSpec):
    """The journey's conversion: ``event`` within ``within`` of entry ends the run converted."""

    within: PositiveDuration


class QuietHoursSpec(_Spec):
    start: Clock
    end: Clock
    action: Literal["defer", "skip"] = "defer"


class FrequencyCapSpec(_Spec):
    channel: ChannelName
    limit: Count = Field(gt=0)
    per: PositiveDuration


class JourneySpec(_Spec):
    """A whole journey file."""

    id: JourneyId
    name: Text
    entry: EntrySpec
    goal: GoalSpec | None = None
    exit: list[EventSpec] = Field(default_factory=list)
    timezone: TimeZone | None = None
    quiet_hours: QuietHoursSpec | None = None
    frequency_caps: list[FrequencyCapSpec] = Field(default_factory=list)
    throttle: Count | None = Field(default=None, gt=0)  # messages per minute
    priority: Count = Field(default=3, ge=1, le=5)
    traits: list[TraitPath] = Field(default_factory=list)  # traits conditions may read
    templates: dict[Identifier, TemplateSpec] = Field(default_factory=dict)
    defaults: DefaultsSpec | None = None
    stages: list[StageSpec] = Field(min_length=1)


WaitForSpec.model_rebuild()
CaseSpec.model_rebuild()
BranchSpec.model_rebuild()
PathSpec.model_rebuild()
ExperimentSpec.model_rebuild()
TouchpointSpec.model_rebuild()
