"""The messages of one request, read: the fast reader first, the Segment models for the rest.

``fast_read`` takes the plainly well-formed messages; every other message goes through
``parse_message`` and ``normalise``, which accept it the same way or say why not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import fast_read
from .segment import (
    Batch,
    IncomingEvent,
    Message,
    MessageRejected,
    Rejected,
    normalise,
    parse_message,
    within_limit,
)


def read_single(
    raw: dict[str, Any], kind: type[Message], *, received_at: datetime, source_id: str
) -> IncomingEvent:
    """The one message of ``/v1/track`` and the like; raises ``MessageRejected``."""
    if within_limit(raw):
        name: str = kind.model_fields["type"].default
        event = fast_read.read(raw, name, received_at=received_at, source_id=source_id)
        if event is not None:
            return event
    return normalise(parse_message(raw, kind), received_at=received_at, source_id=source_id)


def read_batch(
    batch: Batch, *, received_at: datetime, source_id: str | None = None
) -> tuple[list[IncomingEvent], list[Rejected]]:
    """The batch's acceptable messages, normalised, and the ones rejected alone."""
    events: list[IncomingEvent] = []
    rejected: list[Rejected] = []
    for index, raw in enumerate(batch.batch):
        if isinstance(raw, dict) and within_limit(raw):
            event = fast_read.read(
                raw,
                None,
                received_at=received_at,
                sent_at=batch.sent_at,
                shared_context=batch.context,
                source_id=source_id,
            )
            if event is not None:
                events.append(event)
                continue
        try:
            message = parse_message(raw)
        except MessageRejected as exc:
            message_id = raw.get("messageId") if isinstance(raw, dict) else None
            rejected.append(
                Rejected(
                    index=index,
                    message_id=message_id if isinstance(message_id, str) else None,
                    code=exc.code,
                    message=exc.message,
                    problems=exc.problems,
                )
            )
            continue
        events.append(
            normalise(
                message,
                received_at=received_at,
                sent_at=batch.sent_at,
                shared_context=batch.context,
                source_id=source_id,
            )
        )
    return events, rejected
