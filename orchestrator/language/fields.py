"""The field types of journey files: what each kind of value accepts, how it is written back,
and how the JSON Schema describes it.

Every type pairs a validator (messages meant for the journey's author, raised with ``fail``)
with a ``WithJsonSchema`` for editors and, where validation changes the value, a
``PlainSerializer`` that writes it back as a file has it. ``spec.py`` builds the models of a
journey file from these types.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, NamedTuple, NoReturn

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import (
    AfterValidator,
    PlainSerializer,
    PlainValidator,
    Strict,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from journeyman.workflows import local_time
from journeyman.workflows.plan import CHANNELS, Channel, Operator, Reentry, Scalar

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
# Twilio's limit for one message (sent as up to ten segments); channels.SmsMessage holds it too.
SMS_MAX_LENGTH = 1600
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Headers the HTTP client writes: framing and connection handling are not a journey's to set.
RESERVED_HEADERS = (
    "Host", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade", "TE",
    "Trailer",
)  # fmt: skip
# Keys Firebase Cloud Messaging reserves in a notification's data (and any starting with these).
PUSH_RESERVED_KEYS = ("from", "message_type", "collapse_key", "notification")
PUSH_RESERVED_PREFIXES = ("google", "gcm")
# Goals and KPI names are words for reports and spreadsheet columns, not prose.
MAX_LABEL = 64
# What marketers usually set a touchpoint out to do; any other word is fine too.
GOAL_EXAMPLES = ("awareness", "traffic", "engagement", "conversion", "retention", "advocacy")
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_TRAIT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

_IDENTIFIER = re.compile(r"[a-z0-9_-]{1,64}")
# Subscription groups are configured as channel:name with these names (tracking.consent).
_GROUP = re.compile(r"[a-z0-9_]{1,64}")
_LOCALE = re.compile(r"[a-z]{2,8}(-[a-z0-9]{1,8})*")
_JOURNEY_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_PATH_PART = re.compile(r"[^.\s]+")
# RFC 9110 tokens: what a header name may hold.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_DATA_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
# Scheme and host are written out, so a request always goes where the file says; a path and
# query follow, and may hold templates. An IPv6 host is in brackets.
_URL_START = re.compile(r"(https?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(?=[/?#]|$)")
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


def _group(value: str) -> str:
    if not _GROUP.fullmatch(value):
        fail(
            "a subscription group is lowercase letters, digits or '_' (at most 64 characters),"
            f" like marketing or transactional; got {value!r}"
        )
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


def _single_line(what: str) -> AfterValidator:
    def check(value: str) -> str:
        if "\n" in value.strip():
            fail(f"{what} must be a single line")
        return value

    return AfterValidator(check)


def _sms_length(value: str) -> str:
    if len(value) > SMS_MAX_LENGTH:
        fail(f"an SMS body is at most {SMS_MAX_LENGTH} characters; this one has {len(value)}")
    return value


def _url(value: str) -> str:
    start = _URL_START.match(value)
    if start is None or (start.group(3) and int(start.group(3)[1:]) > 65535):
        hint = ""
        if "{" in value.split("://", 1)[-1].split("/", 1)[0]:
            hint = " (templates may follow in the path and query, not in the host)"
        elif "@" in value.split("://", 1)[-1].split("/", 1)[0]:
            hint = " (credentials do not belong in a URL: send them in a header)"
        fail(
            "a webhook url is http:// or https:// and a host written out, like"
            f" https://crm.example.com/hooks/lead; got {value!r}{hint}"
        )
    return _template(value)


def _method(value: object) -> str:
    if value not in HTTP_METHODS:
        hint = ""
        if isinstance(value, str) and value.upper() in HTTP_METHODS:
            hint = f"; write it in capitals: {value.upper()}"
        fail(f"unknown method {value!r}; use one of {', '.join(HTTP_METHODS)}{hint}")
    assert isinstance(value, str)
    return value


def _header_name(value: str) -> str:
    if not _HEADER_NAME.fullmatch(value):
        fail(
            "a header name is letters, digits and !#$%&'*+-.^_`|~, without spaces or colons;"
            f" got {value!r}"
        )
    if value.lower() in {name.lower() for name in RESERVED_HEADERS}:
        fail(f"header {value!r} is set by the HTTP client itself; remove it")
    return value


def _data_key(value: str) -> str:
    if not _DATA_KEY.fullmatch(value):
        fail(
            "a data key starts with a letter or '_', then letters, digits, '_', '.' or '-',"
            f" at most 64 characters; got {value!r}"
        )
    return value


def _push_data_key(value: str) -> str:
    lowered = value.lower()
    if lowered in PUSH_RESERVED_KEYS or lowered.startswith(PUSH_RESERVED_PREFIXES):
        fail(
            f"data key {value!r} is reserved by push services (from, message_type, collapse_key,"
            " notification, and keys starting with google or gcm); choose another"
        )
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


def _channel(value: object) -> Channel:
    for channel in CHANNELS:
        if value == channel:
            return channel
    fail(f"unknown channel {value!r}; available: {', '.join(CHANNELS)}")


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


def _any_case(word: str) -> str:
    """A regular expression matching ``word`` in any case (JSON Schema patterns have no flags)."""
    # Header names here hold letters and '-', which needs no escape outside a class.
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


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
GroupName = Annotated[str, AfterValidator(_group), _text(r"^[a-z0-9_]{1,64}$")]
Locale = Annotated[str, AfterValidator(_locale), _text(r"^[a-z]{2,8}(-[a-z0-9]{1,8})*$")]
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
Template = Annotated[str, AfterValidator(_not_blank), AfterValidator(_template), _text(_NOT_BLANK)]
_ONE_LINE = r"^\s*\S([^\n]*\S)?\s*$"
Subject = Annotated[Template, _single_line("a subject"), _text(_ONE_LINE)]
Title = Annotated[Template, _single_line("a title"), _text(_ONE_LINE)]
SmsText = Annotated[
    Template,
    AfterValidator(_sms_length),
    WithJsonSchema({"type": "string", "pattern": _NOT_BLANK, "maxLength": SMS_MAX_LENGTH}),
]
WebhookUrl = Annotated[
    str,
    AfterValidator(_url),
    _text(r"^https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?([/?#].*)?$"),
]
HttpMethod = Annotated[
    str, PlainValidator(_method), WithJsonSchema({"type": "string", "enum": list(HTTP_METHODS)})
]
HeaderName = Annotated[
    str,
    AfterValidator(_header_name),
    _text(
        f"^(?!({'|'.join(_any_case(name) for name in RESERVED_HEADERS)})$)"
        r"[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
    ),
]
HeaderValue = Annotated[Template, _single_line("a header value"), _text(_ONE_LINE)]
DataKey = Annotated[str, AfterValidator(_data_key), _text(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]
PushDataKey = Annotated[
    DataKey,
    AfterValidator(_push_data_key),
    _text(
        f"^(?!({'|'.join(PUSH_RESERVED_KEYS)})$|{'|'.join(PUSH_RESERVED_PREFIXES)})"
        r"[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
    ),
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
ConditionSpec = Annotated[
    tuple[Condition, ...],
    PlainValidator(_conditions),
    WithJsonSchema(_condition_json()),
    PlainSerializer(_written_conditions, when_used="json"),
]
Clock = Annotated[str, PlainValidator(_clock), _CLOCK_JSON]
ChannelName = Annotated[
    Channel, PlainValidator(_channel), WithJsonSchema({"type": "string", "enum": list(CHANNELS)})
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
