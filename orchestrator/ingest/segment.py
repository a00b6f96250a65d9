"""Request models of the Segment HTTP tracking API (``track``, ``identify``, ``batch``).

Speaking the spec means every existing analytics SDK can feed Journeyman unchanged. Unknown
fields (``integrations``, ``context.library``, ``_metadata``...) are accepted and ignored.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

# Temporal keeps workflow ids and keyword search attributes to 255 characters on SQL stores,
# and the run's workflow id wraps the customer id: keep room for the journey id.
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=160)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    user_id: Id | None = Field(default=None, alias="userId")
    anonymous_id: Id | None = Field(default=None, alias="anonymousId")
    message_id: Id | None = Field(default=None, alias="messageId")
    timestamp: datetime | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    write_key: str | None = Field(default=None, alias="writeKey")

    @model_validator(mode="before")
    @classmethod
    def _coerce_ids(cls, data: Any) -> Any:
        # The spec allows numeric ids; SDKs send them as numbers at times.
        if isinstance(data, dict):
            for key in ("userId", "anonymousId"):
                if isinstance(data.get(key), int | float) and not isinstance(data.get(key), bool):
                    data = {**data, key: str(data[key])}
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
    type: Literal["track"] = "track"
    event: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
    properties: dict[str, Any] = Field(default_factory=dict)


class Identify(_Message):
    type: Literal["identify"] = "identify"
    traits: dict[str, Any] = Field(default_factory=dict)


Message = Annotated[Track | Identify, Field(discriminator="type")]


class Batch(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    batch: list[Message] = Field(min_length=1, max_length=5000)
    write_key: str | None = Field(default=None, alias="writeKey")
    context: dict[str, Any] = Field(default_factory=dict)


MessageType = Literal["track", "identify", "page", "screen", "group", "alias"]


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


def normalise(
    message: Track | Identify, *, shared_context: dict[str, Any] | None = None
) -> IncomingEvent:
    """Fill in what the spec lets a client leave out (message id, timestamp)."""
    context = {**(shared_context or {}), **message.context}
    occurred = message.timestamp or datetime.now(UTC)
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)
    return IncomingEvent(
        message_id=message.message_id or str(uuid.uuid4()),
        type=message.type,
        customer_id=message.customer_id,
        user_id=message.user_id,
        anonymous_id=message.anonymous_id,
        event=message.event if isinstance(message, Track) else None,
        properties=message.properties if isinstance(message, Track) else {},
        traits=message.traits if isinstance(message, Identify) else {},
        context=context,
        occurred_at=occurred,
    )
