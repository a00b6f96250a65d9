"""Reading well-formed Segment messages without the pydantic models, for throughput.

Validating a message through its model and then normalising it took a large share of the
API's time per message, and almost every message an SDK sends is plainly well formed. So a
message is first read here, by hand: when every field is of the plain kind the models accept
unchanged (ids and names as text with nothing to strip, times as ISO-8601 text, objects as
objects), the ``IncomingEvent`` is built straight away. Anything else (a field the models
would trim, coerce or reject, an unknown type, a field named the Python way) makes ``read``
answer None, and the message takes the models' path, which accepts it the same way or
rejects it with the field and the reason. The two paths are held equal by a property test
(tests/orchestrator/ingest/test_fast_read.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from .segment import IncomingEvent, correct_time

# The limits of the models' ``Id`` and ``Name`` fields.
_ID_CHARS: Final = 160
_NAME_CHARS: Final = 256
_TYPES: Final = frozenset({"track", "identify", "page", "screen", "group", "alias"})
# The models also accept their fields by Python name (``user_id``); such a message is rare
# enough to leave to them, which also settles which of two spellings wins.
_PYTHON_NAMES: Final = frozenset(
    {
        "user_id",
        "anonymous_id",
        "message_id",
        "original_timestamp",
        "sent_at",
        "write_key",
        "group_id",
        "previous_id",
    }
)


class _NotPlain(Exception):
    """The message is not plainly well formed: the models must read it."""


def _text(value: Any, limit: int) -> str:
    # Text the models keep as it is: nothing to strip, within the length limit.
    if (
        type(value) is str
        and 0 < len(value) <= limit
        and not value[0].isspace()
        and not value[-1].isspace()
    ):
        return value
    raise _NotPlain


def _id(value: Any) -> str:
    """A required id (``userId``...); numbers are read as text, as the models do."""
    if type(value) is int or type(value) is float:
        value = str(value)
    return _text(value, _ID_CHARS)


def _optional_id(value: Any) -> str | None:
    return None if value is None else _id(value)


def _optional_name(value: Any) -> str | None:
    return None if value is None else _text(value, _NAME_CHARS)


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if type(value) is not str:
        raise _NotPlain
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _NotPlain from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _object(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise _NotPlain
    return value


def read(
    raw: Mapping[str, Any],
    kind: str | None,
    *,
    received_at: datetime,
    sent_at: datetime | None = None,
    shared_context: Mapping[str, Any] | None = None,
    source_id: str | None = None,
) -> IncomingEvent | None:
    """The message as ``normalise(parse_message(raw))`` stores it, or None: use the models.

    ``kind`` is the endpoint's message type (None in a batch: the message's own ``type``).
    The caller has checked the message's size (``segment.within_limit``).
    """
    try:
        return _read(raw, kind, received_at, sent_at, shared_context, source_id)
    except _NotPlain:
        return None


def _read(
    raw: Mapping[str, Any],
    kind: str | None,
    received_at: datetime,
    batch_sent_at: datetime | None,
    shared_context: Mapping[str, Any] | None,
    source_id: str | None,
) -> IncomingEvent:
    stated = raw.get("type")
    if kind is None:
        if type(stated) is not str or stated not in _TYPES:
            raise _NotPlain
        kind = stated
    elif stated is not None and stated != kind:
        raise _NotPlain
    if "type" in raw and stated is None:
        raise _NotPlain  # an explicit null type is the models' error to report
    if not _PYTHON_NAMES.isdisjoint(raw):
        raise _NotPlain
    user_id = _optional_id(raw.get("userId"))
    anonymous_id = _optional_id(raw.get("anonymousId"))
    message_id = raw.get("messageId")
    if message_id is not None:
        message_id = _text(message_id, _ID_CHARS)  # not coerced from a number
    if user_id is None and anonymous_id is None:
        raise _NotPlain
    write_key = raw.get("writeKey")
    if write_key is not None and type(write_key) is not str:
        raise _NotPlain
    timestamp = _time(raw.get("timestamp"))
    original = _time(raw.get("originalTimestamp"))
    sent = _time(raw.get("sentAt")) or batch_sent_at
    own_context = _object(raw.get("context"))
    context = {**shared_context, **own_context} if shared_context else own_context
    event: str | None = None
    properties: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    group_id: str | None = None
    previous_id: str | None = None
    if kind == "track":
        event = _text(raw.get("event"), _NAME_CHARS)
        properties = _object(raw.get("properties"))
    elif kind == "page" or kind == "screen":
        event = _optional_name(raw.get("name"))
        category = _optional_name(raw.get("category"))
        properties = _object(raw.get("properties"))
        if event is not None or category is not None:
            # As normalise: the call's name and category become properties too.
            named = {"name": event, "category": category}
            properties = {**properties, **{k: v for k, v in named.items() if v is not None}}
    elif kind == "identify":
        own = _object(raw.get("traits"))
        in_context = context.get("traits")
        traits = {**in_context, **own} if isinstance(in_context, dict) else own
    elif kind == "group":
        group_id = _id(raw.get("groupId"))
        traits = _object(raw.get("traits"))
    else:  # alias
        if user_id is None:
            raise _NotPlain
        previous_id = _id(raw.get("previousId"))
    return IncomingEvent(
        message_id=message_id or str(uuid.uuid4()),
        type=kind,
        customer_id=user_id or anonymous_id or "",
        event=event,
        properties=properties,
        traits=traits,
        context=context,
        occurred_at=correct_time(timestamp or original, sent, received_at),
        user_id=user_id,
        anonymous_id=anonymous_id,
        previous_id=previous_id,
        group_id=group_id,
        sent_at=sent,
        received_at=received_at,
        source_id=source_id,
    )
