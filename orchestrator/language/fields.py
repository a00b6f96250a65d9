"""The field types of journey files: what each kind of value accepts, how it is written back,
and how the JSON Schema describes it.

Every type pairs a validator (messages meant for the journey's author, raised with ``fail``)
with a ``WithJsonSchema`` for editors and, where validation changes the value, a
``PlainSerializer`` that writes it back as a file has it. ``spec.py`` builds the models of a
journey file from these types. The types of property filters (``where``) are in
``property_filters.py``, those of send steps in ``send_fields.py``, and the JSON Schema pieces
they share in ``field_schemas.py``.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, NoReturn

from pydantic import AfterValidator, PlainSerializer, PlainValidator, Strict, WithJsonSchema
from pydantic_core import PydanticCustomError

from journeyman.workflows import local_time
from journeyman.workflows.plan import CHANNELS, Reentry

from .durations import DurationError, format_duration, parse_duration
from .field_schemas import _CLOCK_JSON, _NOT_BLANK, _PATH_TEXT, _PERCENT_TEXT, _duration_json, _text

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
# Goals and KPI names are words for reports and spreadsheet columns, not prose.
MAX_LABEL = 64
# What marketers usually set a touchpoint out to do; any other word is fine too.
GOAL_EXAMPLES = ("awareness", "traffic", "engagement", "conversion", "retention", "advocacy")
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_TRAIT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

_IDENTIFIER = re.compile(r"[a-z0-9_-]{1,64}")
_JOURNEY_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_PATH_PART = re.compile(r"[^.\s]+")


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


def _label(value: str) -> str:
    text = value.strip()
    if not text:
        fail("must not be empty")
    if len(text.splitlines()) > 1:
        fail("a goal or KPI name is a single line")
    if len(text) > MAX_LABEL:
        fail(f"a goal or KPI name is at most {MAX_LABEL} characters; this one has {len(text)}")
    return text


def _property_path(value: str) -> str:
    if not all(_PATH_PART.fullmatch(part) for part in value.split(".")):
        fail(f"a property path is names joined by dots, without spaces; got {value!r}")
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


def send_tag(channel: str) -> str:
    """The tag of a channel's model in the union of send steps (``spec.SendSpec``)."""
    return f"@send:{channel}"


# A send whose channel is not one of CHANNELS: validated only to report every problem.
UNKNOWN_CHANNEL_TAG = send_tag("?")
# Tags of tagged unions: they appear in validation locations and are dropped from error paths.
UNION_TAGS = frozenset(
    {"@timed", "@duration", UNKNOWN_CHANNEL_TAG, *(send_tag(channel) for channel in CHANNELS)}
)


def _duration(minimum: int) -> PlainValidator:
    return PlainValidator(lambda value: _seconds(value, minimum))


# What a file writes for values that validators normalize (see the module docstring).
def _written_duration(seconds: int) -> str:
    return format_duration(seconds)


def _written_signed_duration(seconds: int) -> str:
    return f"-{format_duration(-seconds)}" if seconds < 0 else format_duration(seconds)


def _written_percent(share: float) -> str:
    return f"{int(share) if share.is_integer() else share!r}%"


def _written_reentry(reentry: Reentry) -> Any:
    if reentry.mode == "after":
        return {"after": format_duration(reentry.cooldown_seconds)}
    if reentry.mode == "concurrent":
        return {"concurrent": reentry.key}
    return "once"


JourneyId = Annotated[str, AfterValidator(_journey_id), _text(r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Identifier = Annotated[str, AfterValidator(_identifier), _text(r"^[a-z0-9_-]{1,64}$")]
Text = Annotated[str, AfterValidator(_not_blank), _text(_NOT_BLANK)]
# Spaces around a label are dropped, so the schema lets them through.
_LABEL_TEXT = rf"^\s*\S(.{{0,{MAX_LABEL - 2}}}\S)?\s*$"
Label = Annotated[str, AfterValidator(_label), _text(_LABEL_TEXT)]
GoalLabel = Annotated[
    str,
    AfterValidator(_label),
    WithJsonSchema({"type": "string", "pattern": _LABEL_TEXT, "examples": list(GOAL_EXAMPLES)}),
]
PropertyPath = Annotated[str, AfterValidator(_property_path), _text(_PATH_TEXT)]
TraitPath = Annotated[
    str,
    AfterValidator(_trait_path),
    _text(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"),
]
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
Clock = Annotated[str, PlainValidator(_clock), _CLOCK_JSON]
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
