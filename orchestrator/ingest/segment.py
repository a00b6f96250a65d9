"""The Segment HTTP tracking spec: its six message types, batches, time and size limits.

Speaking the spec means every existing analytics SDK can feed Journeyman unchanged. Unknown
fields (``integrations``, ``context.library``, ``_metadata``...) are accepted and ignored.

Time follows the spec's four timestamps. ``originalTimestamp`` is the client's clock when the
call was made (a message's ``timestamp`` as sent, else its ``originalTimestamp``); ``sentAt``
is the client's clock when the request left (per message, else the batch's); ``receivedAt``
is the server's clock, read once per request; the event's time is corrected for the client's
clock skew as ``receivedAt - (sentAt - originalTimestamp)``. Without ``sentAt`` the time sent
is trusted as is (server-side imports of history); without any, the event happened when it
was received. Times without a zone are UTC; a time that is not ISO-8601 makes the message
invalid.

Limits: a message's JSON may take ``MAX_MESSAGE_BYTES``. In a batch, a message that is too
large or not valid is rejected alone (a ``Rejected``) and the others are accepted.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

# Temporal keeps workflow ids and keyword search attributes to 255 characters on SQL stores,
# and the run's workflow id wraps the customer id: keep room for the journey id.
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=160)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]

# The spec's limit per message (its JSON, compact, UTF-8); SDKs check the same before sending.
MAX_MESSAGE_BYTES = 32 * 1024

MessageType = Literal["track", "identify", "page", "screen", "group", "alias"]
RejectionCode = Literal["too_large", "invalid"]


def _iso8601(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 date string")
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value[:64]!r} is not an ISO-8601 date string") from None


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _empty_when_null(value: Any) -> Any:
    # SDKs send `"properties": null` (or `traits`, `context`) when the caller gave none.
    return {} if value is None else value


Timestamp = Annotated[datetime, BeforeValidator(_iso8601), AfterValidator(_as_utc)]
Object = Annotated[dict[str, Any], BeforeValidator(_empty_when_null)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    user_id: Id | None = Field(default=None, alias="userId")
    anonymous_id: Id | None = Field(default=None, alias="anonymousId")
    message_id: Id | None = Field(default=None, alias="messageId")
    timestamp: Timestamp | None = None
    original_timestamp: Timestamp | None = Field(default=None, alias="originalTimestamp")
    sent_at: Timestamp | None = Field(default=None, alias="sentAt")
    context: Object = Field(default_factory=dict)
    write_key: str | None = Field(default=None, alias="writeKey")

    @model_validator(mode="before")
    @classmethod
    def _coerce_ids(cls, data: Any) -> Any:
        # The spec allows numeric ids; SDKs send them as numbers at times.
        if isinstance(data, dict):
            for key in ("userId", "anonymousId", "groupId", "previousId"):
                value = data.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    data = {**data, key: str(value)}
        return data

    @model_validator(mode="after")
    def _needs_an_id(self) -> _Message:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("either userId or anonymousId is required")
        return self

    @property
    def customer_id(self) -> str:
        return self.user_id or self.anonymous_id or ""


class Track(_Message):
    """A customer's action."""

    type: Literal["track"] = "track"
    event: Name
    properties: Object = Field(default_factory=dict)


class Identify(_Message):
    """Who the customer is: traits to merge into their profile."""

    type: Literal["identify"] = "identify"
    traits: Object = Field(default_factory=dict)


class Page(_Message):
    """A page seen on a website; ``name`` and ``category`` are optional."""

    type: Literal["page"] = "page"
    name: Name | None = None
    category: Name | None = None
    properties: Object = Field(default_factory=dict)


class Screen(_Message):
    """A screen seen in a mobile app (the SDKs may send a ``category`` too)."""

    type: Literal["screen"] = "screen"
    name: Name | None = None
    category: Name | None = None
    properties: Object = Field(default_factory=dict)


class Group(_Message):
    """The customer belongs to a group (an account, a company), with the group's traits."""

    type: Literal["group"] = "group"
    group_id: Id = Field(alias="groupId")
    traits: Object = Field(default_factory=dict)


class Alias(_Message):
    """``previousId`` (often an anonymous id) and ``userId`` are the same customer."""

    type: Literal["alias"] = "alias"
    user_id: Id = Field(alias="userId")
    previous_id: Id = Field(alias="previousId")


Message = Track | Identify | Page | Screen | Group | Alias
MESSAGE_TYPES: dict[str, type[Message]] = {
    "track": Track,
    "identify": Identify,
    "page": Page,
    "screen": Screen,
    "group": Group,
    "alias": Alias,
}


class Batch(BaseModel):
    """A batch request's envelope; each message in it is read alone (``messages.read_batch``)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    batch: list[Any] = Field(min_length=1)
    write_key: str | None = Field(default=None, alias="writeKey")
    context: Object = Field(default_factory=dict)
    sent_at: Timestamp | None = Field(default=None, alias="sentAt")


class IncomingEvent(BaseModel):
    """An accepted message, normalised: one customer id, a message id, a time.

    ``customer_id`` is the id the message names (``userId``, else ``anonymousId``); storing it
    resolves that to the canonical customer when identities were merged. For ``page`` and
    ``screen`` messages ``event`` holds the page or screen name.
    """

    model_config = ConfigDict(frozen=True)

    message_id: str
    type: MessageType
    customer_id: str
    event: str | None
    properties: dict[str, Any]
    traits: dict[str, Any]
    context: dict[str, Any]
    occurred_at: datetime
    user_id: str | None = None
    anonymous_id: str | None = None
    previous_id: str | None = None  # alias: the id that becomes ``user_id``
    group_id: str | None = None  # group: the account the customer belongs to
    sent_at: datetime | None = None
    received_at: datetime | None = None  # set by the server; None means "now" when stored
    source_id: str | None = None  # which write key's source sent it


@dataclass(frozen=True)
class Problem:
    """What is wrong with one field of a message (``field`` is empty for the whole message)."""

    field: str
    message: str


class MessageRejected(ValueError):
    """A message that cannot be accepted, and why."""

    def __init__(self, code: RejectionCode, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.code, self.message, self.problems = code, message, problems


@dataclass(frozen=True)
class Rejected:
    """A message of a batch that was rejected alone."""

    index: int
    message_id: str | None
    code: RejectionCode
    message: str
    problems: list[Problem]


def message_size(raw: Any) -> int:
    """The size the limit applies to: the message's compact JSON in UTF-8."""
    return len(json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode())


# No token of ``message_size``'s JSON is more than this many times as long as orjson's for
# the same value (a character one escapes as ``\u001f`` and the other not; ``Infinity``
# against ``null``), so a message whose orjson text is this many times under the limit is
# under it: the exact, slower measure is left for the rare large message.
_WORST_RATIO = 6


def within_limit(raw: Any) -> bool:
    """Whether the message's compact JSON takes at most ``MAX_MESSAGE_BYTES``."""
    try:
        if len(orjson.dumps(raw)) * _WORST_RATIO <= MAX_MESSAGE_BYTES:
            return True
    except TypeError:  # an integer beyond 64 bits, a lone surrogate: measure exactly
        pass
    return message_size(raw) <= MAX_MESSAGE_BYTES


def problems_of(exc: ValidationError) -> list[Problem]:
    """Pydantic errors as field paths in the message's own names (``properties.sku``)."""
    out = []
    for err in exc.errors():
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        text = err["msg"]
        if err["type"] == "value_error":  # our own validators' words, without the prefix
            text = text.removeprefix("Value error, ")
        out.append(Problem(path, text))
    return out


def _summary(problems: list[Problem]) -> str:
    shown = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return f"message is not valid: {shown}{more}"


def parse_message(raw: Any, kind: type[Message] | None = None) -> Message:
    """One message, checked against the limit and its type's model.

    ``kind`` is the endpoint's type (``/v1/track``...); None reads ``type`` from the message,
    as in a batch. Raises ``MessageRejected`` naming what is wrong.
    """
    if not isinstance(raw, dict):
        problem = Problem("", "a message must be a JSON object")
        raise MessageRejected("invalid", problem.message, [problem])
    if not within_limit(raw):
        text = f"message is {message_size(raw)} bytes of JSON; the limit is {MAX_MESSAGE_BYTES}"
        raise MessageRejected("too_large", text, [Problem("", text)])
    if kind is None:
        name = raw.get("type")
        if not isinstance(name, str) or name not in MESSAGE_TYPES:  # {} is not even hashable
            known = ", ".join(MESSAGE_TYPES)
            text = (
                "type is required" if name is None else f"unknown message type {str(name)!r}"
            ) + f": one of {known}"
            raise MessageRejected(
                "invalid", f"message is not valid: type: {text}", [Problem("type", text)]
            )
        kind = MESSAGE_TYPES[name]
    try:
        return kind.model_validate(raw)
    except ValidationError as exc:
        problems = problems_of(exc)
        raise MessageRejected("invalid", _summary(problems), problems) from None


def correct_time(
    original: datetime | None, sent_at: datetime | None, received_at: datetime
) -> datetime:
    """When the event happened, by the spec: ``receivedAt - (sentAt - originalTimestamp)``."""
    if original is None:
        return received_at
    if sent_at is None:
        return original
    return received_at - (sent_at - original)


def _page_properties(message: Page | Screen) -> dict[str, Any]:
    # As Segment's libraries do: the call's name and category become properties too.
    named = {"name": message.name, "category": message.category}
    return {**message.properties, **{k: v for k, v in named.items() if v is not None}}


def normalise(
    message: Message,
    *,
    received_at: datetime | None = None,
    sent_at: datetime | None = None,
    shared_context: Mapping[str, Any] | None = None,
    source_id: str | None = None,
) -> IncomingEvent:
    """The message as Journeyman stores it: ids resolved, time corrected, defaults filled.

    ``received_at`` is the server's clock for the whole request (now when None); ``sent_at``
    and ``shared_context`` come from a batch's envelope, the message's own win over them.
    """
    received = received_at or datetime.now(UTC)
    sent = message.sent_at or sent_at
    context = {**(shared_context or {}), **message.context}
    event: str | None = None
    properties: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    if isinstance(message, Track):
        event, properties = message.event, message.properties
    elif isinstance(message, Page | Screen):
        event, properties = message.name, _page_properties(message)
    elif isinstance(message, Identify):
        # RudderStack's SDKs send an identify's traits in `context.traits` only; both
        # describe the customer, and the message's own win.
        in_context = context.get("traits")
        traits = {**(in_context if isinstance(in_context, dict) else {}), **message.traits}
    elif isinstance(message, Group):
        traits = message.traits  # the group's; `context.traits` would be the customer's
    return IncomingEvent(
        message_id=message.message_id or str(uuid.uuid4()),
        type=message.type,
        customer_id=message.customer_id,
        user_id=message.user_id,
        anonymous_id=message.anonymous_id,
        previous_id=message.previous_id if isinstance(message, Alias) else None,
        group_id=message.group_id if isinstance(message, Group) else None,
        event=event,
        properties=properties,
        traits=traits,
        context=context,
        occurred_at=correct_time(message.timestamp or message.original_timestamp, sent, received),
        sent_at=sent,
        received_at=received,
        source_id=source_id,
    )
