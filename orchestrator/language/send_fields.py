"""The field types of send steps: content templates, channels, subscription groups, locales,
webhook requests and push data.

Like ``fields.py``, each type pairs a validator (messages for the journey's author, raised with
``fail``) with a ``WithJsonSchema`` for editors; ``sends.py`` builds the send models from them.
"""

from __future__ import annotations

import re
from typing import Annotated

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import AfterValidator, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from journeyman.workflows.plan import CHANNELS, Channel

from .field_schemas import _NOT_BLANK, _ONE_LINE, _any_case, _text
from .fields import _not_blank, fail

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
# Subscription groups are configured as channel:name with these names (tracking.consent).
_GROUP = re.compile(r"[a-z0-9_]{1,64}")
_LOCALE = re.compile(r"[a-z]{2,8}(-[a-z0-9]{1,8})*")
# RFC 9110 tokens: what a header name may hold.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_DATA_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
# Scheme and host are written out, so a request always goes where the file says; a path and
# query follow, and may hold templates. An IPv6 host is in brackets.
_URL_START = re.compile(r"(https?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(?=[/?#]|$)")
_TEMPLATES = SandboxedEnvironment()


def _group(value: str) -> str:
    if not _GROUP.fullmatch(value):
        fail(
            "a subscription group is lowercase letters, digits or '_' (at most 64 characters),"
            f" like marketing or transactional; got {value!r}"
        )
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


GroupName = Annotated[str, AfterValidator(_group), _text(r"^[a-z0-9_]{1,64}$")]
Locale = Annotated[str, AfterValidator(_locale), _text(r"^[a-z]{2,8}(-[a-z0-9]{1,8})*$")]
Template = Annotated[str, AfterValidator(_not_blank), AfterValidator(_template), _text(_NOT_BLANK)]
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
ChannelName = Annotated[
    Channel, PlainValidator(_channel), WithJsonSchema({"type": "string", "enum": list(CHANNELS)})
]
