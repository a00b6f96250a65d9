"""The journey file as written: pydantic models of the YAML surface, before compilation.

Validation errors raised here carry messages meant for the journey's author; the compiler
turns them into diagnostics with file, line and column.

The models are also the Python API (``builder.py``) and the source of the published JSON
Schema (``schema.py``): field docstrings are its help text, ``WithJsonSchema`` says what
each custom validator accepts, and ``PlainSerializer``s write values back as a file has them
(``model_dump(mode="json")``: durations as ``3d``, conditions as ``{gte: 10}``).
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
    PlainSerializer,
    PlainValidator,
    Strict,
    Tag,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from journeyman.orchestrator.scheduling.cron import Cron, CronError
from journeyman.workflows import local_time
from journeyman.workflows.plan import Operator, Reentry, Scalar, Weekday

from .durations import MAX_SECONDS, DurationError, format_duration, parse_duration

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
    # A WaitUntilSpec instance comes from Python code, and from serializing a validated wait.
    return "@timed" if isinstance(value, dict | WaitUntilSpec) else "@duration"


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


# What a file writes for values that validators normalize (see the module docstring).
def _written_duration(seconds: int) -> str:
    return format_duration(seconds)


def _written_signed_duration(seconds: int) -> str:
    return f"-{format_duration(-seconds)}" if seconds < 0 else format_duration(seconds)


def _written_conditions(conditions: tuple[Condition, ...]) -> Any:
    if len(conditions) == 1 and conditions[0].op == "eq":
        return conditions[0].value
    return {condition.op: condition.value for condition in conditions}


def _written_percent(share: float) -> str:
    return f"{int(share) if share.is_integer() else share!r}%"


def _written_reentry(reentry: Reentry) -> Any:
    if reentry.mode == "after":
        return {"after": format_duration(reentry.cooldown_seconds)}
    if reentry.mode == "concurrent":
        return {"concurrent": reentry.key}
    return "once"


# JSON Schema of what the custom validators accept, as closely as patterns allow; the
# compiler stays the judge (templates, time zones, cron fields, 3650d at most).
def _text(pattern: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": pattern})


def _scalar_json() -> dict[str, Any]:
    return {"type": ["string", "number", "boolean", "null"]}


def _duration_json(minimum: int, *, signed: bool = False) -> WithJsonSchema:
    units = r"(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?"
    sign = r"(-\s*)?" if signed else ""
    nonzero = r"(?=\S*[1-9])" if minimum else ""  # "0s" and "0d0h" are zero too
    return WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "integer",
                    "minimum": -MAX_SECONDS if signed else minimum,
                    "maximum": MAX_SECONDS,
                },
                {"type": "string", "pattern": rf"^\s*{sign}{nonzero}(?=\d){units}\s*$"},
            ]
        }
    )


def _condition_json() -> dict[str, Any]:
    number = {"type": "number"}
    operators: dict[str, Any] = {
        "eq": _scalar_json(),
        "ne": _scalar_json(),
        "gt": number,
        "gte": number,
        "lt": number,
        "lte": number,
        "one_of": {"type": "array", "minItems": 1, "items": _scalar_json()},
        "exists": {"type": "boolean"},
    }
    assert set(operators) == set(OPERATORS)
    mapping = {
        "type": "object",
        "properties": operators,
        "additionalProperties": False,
        "minProperties": 1,
    }
    return {"anyOf": [_scalar_json(), mapping]}


def _cron_json() -> WithJsonSchema:
    part = r"(\*|[A-Za-z0-9]+(-[A-Za-z0-9]+)?)(/\d+)?"
    field = rf"{part}(,{part})*"
    return _text(rf"^\s*{field}(\s+{field}){{4}}\s*$")


def _present(key: str) -> dict[str, Any]:
    """JSON Schema: ``key`` is given and not null (a null counts as leaving it out)."""
    return {"required": [key], "properties": {key: {"not": {"type": "null"}}}}


def _not_empty(key: str) -> dict[str, Any]:
    """JSON Schema: ``key`` holds a non-empty list or mapping."""
    return {"required": [key], "properties": {key: {"minItems": 1, "minProperties": 1}}}


_CLOCK_JSON = _text(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_NOT_BLANK = r"\S"
_PATH_TEXT = r"^[^.\s]+(\.[^.\s]+)*$"
_PERCENT_TEXT = r"^\s*\+?0*(\d{1,2}(\.\d*)?|\.\d+)\s*%\s*$"
_INSTANT_TEXT = r"^\s*\d{4}-?\d{2}-?\d{2}[T ].*(Z|[+-]\d{2}(:?\d{2}(:?\d{2}(\.\d+)?)?)?)\s*$"

JourneyId = Annotated[str, AfterValidator(_journey_id), _text(r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Identifier = Annotated[str, AfterValidator(_identifier), _text(r"^[a-z0-9_-]{1,64}$")]
Locale = Annotated[str, AfterValidator(_locale), _text(r"^[a-z]{2,8}(-[a-z0-9]{1,8})*$")]
Text = Annotated[str, AfterValidator(_not_blank), _text(_NOT_BLANK)]
PropertyPath = Annotated[str, AfterValidator(_property_path), _text(_PATH_TEXT)]
TraitPath = Annotated[
    str,
    AfterValidator(_trait_path),
    _text(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"),
]
Template = Annotated[str, AfterValidator(_not_blank), AfterValidator(_template), _text(_NOT_BLANK)]
Subject = Annotated[Template, AfterValidator(_single_line), _text(r"^\s*\S([^\n]*\S)?\s*$")]
WaitDuration = Annotated[
    int, _duration(0), _duration_json(0), PlainSerializer(_written_duration, when_used="json")
]
PositiveDuration = Annotated[
    int, _duration(1), _duration_json(1), PlainSerializer(_written_duration, when_used="json")
]
SignedDuration = Annotated[
    int,
    PlainValidator(_signed_duration),
    _duration_json(0, signed=True),
    PlainSerializer(_written_signed_duration, when_used="json"),
]
ConditionSpec = Annotated[
    tuple[Condition, ...],
    PlainValidator(_conditions),
    WithJsonSchema(_condition_json()),
    PlainSerializer(_written_conditions, when_used="json"),
]
Clock = Annotated[str, PlainValidator(_clock), _CLOCK_JSON]
ChannelName = Annotated[
    str, PlainValidator(_channel), WithJsonSchema({"type": "string", "enum": list(CHANNELS)})
]
TimeZone = Annotated[
    str,
    AfterValidator(_timezone),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$",
            "maxLength": local_time.MAX_ZONE_NAME,
            "examples": ["Europe/Paris", "Asia/Seoul", "UTC"],
        }
    ),
]
Percent = Annotated[
    float,
    PlainValidator(_percent),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "exclusiveMaximum": 100},
                {"type": "string", "pattern": _PERCENT_TEXT},
            ]
        }
    ),
    PlainSerializer(_written_percent, when_used="json"),
]
ReentrySpec = Annotated[
    Reentry,
    PlainValidator(_reentry),
    WithJsonSchema(
        {
            "oneOf": [
                {"const": "once"},
                {
                    "type": "object",
                    "properties": {"after": _duration_json(1).json_schema},
                    "required": ["after"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {"concurrent": {"type": "string", "pattern": _PATH_TEXT}},
                    "required": ["concurrent"],
                    "additionalProperties": False,
                },
            ]
        }
    ),
    PlainSerializer(_written_reentry, when_used="json"),
]
# Strict: YAML reads yes/no/on/off as booleans, which must not pass for 1 and 0 (or "5" for 5).
Count = Annotated[int, Strict()]
Flag = Annotated[bool, Strict()]
Fraction = Annotated[float, Strict()]
DwellAction = Literal["exit", "continue"]


class _Spec(BaseModel):
    # Field docstrings are read by schema.py, not at import: pydantic's
    # use_attribute_docstrings would add some 50 ms to every import of this module.
    model_config = ConfigDict(frozen=True, extra="forbid")


class EventSpec(_Spec):
    """An event name with an optional property filter (entry, goal, exit, wait_for)."""

    event: Text
    """The event name, exactly as tracked (`Order Completed`)."""
    where: dict[PropertyPath, ConditionSpec] = Field(default_factory=dict)
    """Property filter: each key a dotted property path, each value a plain value (equals) or
    {operator: value} pairs (eq, ne, gt, gte, lt, lte, one_of, exists) that must all hold."""


class ContentSpec(_Spec):
    """An email's subject and body (text, optional HTML), as jinja2 templates."""

    subject: Subject
    """Jinja template of the subject, one line: `Welcome, {{ profile.first_name }}`."""
    body: Template
    """Jinja template of the plain-text part."""
    html: Template | None = None
    """Jinja template of the HTML part."""


class TemplateSpec(ContentSpec):
    """A named template, with optional per-locale variants ("fr", "pt-br")."""

    locales: dict[Locale, ContentSpec] = Field(default_factory=dict)
    """Translations by lowercase language tag (`fr`, `pt-br`), chosen by the `locale` trait."""


class SendSpec(_Spec):
    """A message to the customer: inline content, or a named ``template``."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": _present("template"),
            "then": {
                "not": {
                    "anyOf": [
                        _present("subject"),
                        _present("body"),
                        _present("html"),
                        _not_empty("locales"),
                    ]
                }
            },
            "else": {"allOf": [_present("subject"), _present("body")]},
        }
    )

    id: Identifier | None = None
    """Step id (or put `id` beside `send`, not both): a `goto` target, shown in reports."""
    channel: ChannelName = "email"
    """The channel: `email`, the only one today."""
    template: Identifier | None = None
    """The name of an entry of `templates`; then no subject, body, html or locales here."""
    subject: Subject | None = None
    """Jinja template of the subject, one line."""
    body: Template | None = None
    """Jinja template of the plain-text part."""
    html: Template | None = None
    """Jinja template of the HTML part."""
    locales: dict[Locale, ContentSpec] = Field(default_factory=dict)
    """Translations by lowercase language tag (`fr`, `pt-br`), chosen by the `locale` trait."""

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


WaitSpec = Annotated[
    Annotated[WaitDuration, Tag("@duration")] | Annotated[WaitUntilSpec, Tag("@timed")],
    Discriminator(_wait_kind),
]


class WaitForSpec(EventSpec):
    """Pause until an event arrives (``on_event``); after ``timeout``, run ``on_timeout``."""

    timeout: PositiveDuration
    """How long to wait for the event (more than zero)."""
    lookback: WaitDuration = 0
    """Events up to this long before the step count too."""
    on_event: list[TouchpointSpec] = Field(default_factory=list)
    """Touchpoints to run when the event came."""
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
    """Send an email: inline content, or a named template."""
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


class StageSpec(_Spec):
    """A lifecycle stage: its goal, its touchpoints and how long a customer may stay."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [_present("goal"), _not_empty("touchpoints")]}
    )

    name: Identifier
    """Unique in the journey; a `goto` target."""
    goal: EventSpec | None = None
    """The event that converts the customer to the next stage, whatever touchpoint they are at."""
    max_dwell: PositiveDuration | None = None
    """Longest stay in the stage; 30 days by default for a stage with a goal."""
    on_max_dwell: DwellAction | None = None
    """When max_dwell passes: `exit` the journey (the default) or `continue` to the next stage."""
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
    """Who enters: customers sending ``event`` (matching ``where``), by API call, and/or an
    audience on a ``schedule``."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                _present("event"),
                {"required": ["api"], "properties": {"api": {"const": True}}},
                _present("schedule"),
            ],
            "if": _not_empty("where"),
            "then": _present("event"),
        }
    )

    event: Text | None = None
    """The event that brings a customer in."""
    where: dict[PropertyPath, ConditionSpec] = Field(default_factory=dict)
    """Property filter on the entry event (needs `event`)."""
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
        if self.event is None and not self.api and self.schedule is None:
            fail("entry needs an event, api: true (customers entered by API call), or a schedule")
        if self.event is None and self.where:
            fail("where filters the entry event; add event")
        return self


class GoalSpec(EventSpec):
    """The journey's conversion: ``event`` within ``within`` of entry ends the run converted."""

    within: PositiveDuration
    """How long after entering the event counts as the conversion."""


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
    """The channel counted: `email`."""
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
    """The journey's conversion: an event within a time of entering ends the run converted."""
    exit: list[EventSpec] = Field(default_factory=list)
    """Events that end the customer's run at once."""
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
