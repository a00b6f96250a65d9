"""The journey file as written: pydantic models of the YAML surface, before compilation.

Validation errors raised here carry messages meant for the journey's author; the compiler
turns them into diagnostics with file, line and column.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, NamedTuple, NoReturn

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, model_validator
from pydantic_core import PydanticCustomError

from journeyman.workflows.plan import Operator, Scalar

from .durations import DurationError, parse_duration

OPERATORS: tuple[Operator, ...] = ("eq", "ne", "gt", "gte", "lt", "lte", "one_of", "exists")
TOUCHPOINT_KINDS = ("send", "wait", "wait_for")

_IDENTIFIER = re.compile(r"[a-z0-9_-]{1,64}")
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
    return value


def _single_line(value: str) -> str:
    if "\n" in value.strip():
        fail("a subject must be a single line")
    return value


def _duration(minimum: int) -> PlainValidator:
    def parse(value: object) -> int:
        try:
            seconds = parse_duration(value)
        except DurationError as exc:
            fail(str(exc))
        if seconds < minimum:
            fail("must be longer than zero")
        return seconds

    return PlainValidator(parse)


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


def _condition(raw: object) -> Condition:
    if not isinstance(raw, dict):
        return Condition("eq", _scalar(raw, "a property value"))
    if len(raw) != 1:
        fail("a condition is a value or one {operator: value} pair, e.g. {gte: 10}")
    ((op, operand),) = raw.items()
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
Text = Annotated[str, AfterValidator(_not_blank)]
PropertyPath = Annotated[str, AfterValidator(_property_path)]
Template = Annotated[str, AfterValidator(_not_blank), AfterValidator(_template)]
Subject = Annotated[Template, AfterValidator(_single_line)]
WaitDuration = Annotated[int, _duration(0)]
PositiveDuration = Annotated[int, _duration(1)]
ConditionSpec = Annotated[Condition, PlainValidator(_condition)]
DwellAction = Literal["exit", "continue"]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EventSpec(_Spec):
    """An event name with an optional property filter (entry, goal, wait_for)."""

    event: Text
    where: dict[PropertyPath, ConditionSpec] = Field(default_factory=dict)


class SendSpec(_Spec):
    """An email sent to the customer."""

    id: Identifier | None = None
    channel: Literal["email"] = "email"
    subject: Subject
    body: Template
    html: Template | None = None


class WaitForSpec(EventSpec):
    """Pause until an event arrives; after ``timeout``, run ``on_timeout`` instead."""

    timeout: PositiveDuration
    on_timeout: list[TouchpointSpec] = Field(default_factory=list)


class TouchpointSpec(_Spec):
    """One list item under ``touchpoints``: exactly one of send, wait, wait_for."""

    send: SendSpec | None = None
    wait: WaitDuration | None = None
    wait_for: WaitForSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data  # pydantic reports the wrong type
        kinds = [kind for kind in TOUCHPOINT_KINDS if kind in data]
        if not kinds:
            found = ", ".join(repr(key) for key in data) or "nothing"
            fail(f"a touchpoint is one of send, wait, wait_for; got {found}")
        if len(kinds) > 1:
            fail(f"put {' and '.join(kinds)} in separate touchpoints (one '- ' item each)")
        if data[kinds[0]] is None:
            hint = "; indent the keys that belong under it" if len(data) > 1 else ""
            fail(f"'{kinds[0]}' has no value{hint}")
        return data


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


class JourneySpec(_Spec):
    """A whole journey file."""

    id: JourneyId
    name: Text
    entry: EventSpec
    defaults: DefaultsSpec | None = None
    stages: list[StageSpec] = Field(min_length=1)


WaitForSpec.model_rebuild()
