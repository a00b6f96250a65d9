"""What a provider sends and what it hands back: the message, the receipt and the protocol.

Every channel follows the same shape: a validated message model in, a ``DeliveryReceipt``
out, errors from ``journeyman.channels.errors``: email, SMS, push and webhooks each have their
message model and a one-method protocol; a provider module implements one of them.

Every message carries ``idempotency_key``: derived from the send's deterministic key, the
same on every retry, and passed to providers that accept one (Twilio's ``I-Twilio-Idempotency-
Token``, a webhook's header), so a retry after the provider accepted cannot send twice.
"""

from __future__ import annotations

import hashlib
import re
from email.utils import parseaddr
from typing import Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

# Deliberately loose (one "@", no spaces or angle brackets): the server is the authority
# on what it accepts; this only stops values that would corrupt the envelope or headers.
_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+")
# RFC 5322 field names: printable ASCII except the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
_ID_PART = re.compile(r"[^<>@\s]+")
_MESSAGE_ID = re.compile(r"<[^<>@\s]+@[^<>@\s]+>")
# Headers the provider writes itself; letting callers set them would make them ambiguous.
RESERVED_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version", "sender"}
)


def _no_line_breaks(value: str) -> str:
    # Any line break in a header value could start a new header (header injection).
    if value and value.splitlines() != [value]:
        raise ValueError("must not contain line breaks")
    return value


def message_id_for(send_key: str, *, from_address: str) -> str:
    """A deterministic ``Message-ID`` for one send, in the sender's domain.

    The same send key always gives the same id, so a retried send that did get through
    carries the same id as the first and receivers can drop the duplicate. The key is
    hashed because it may contain customer identifiers that do not belong in a header.
    """
    _, at, domain = parseaddr(from_address)[1].rpartition("@")
    if not at or not _ID_PART.fullmatch(domain):
        domain = "journeyman.invalid"
    digest = hashlib.sha256(send_key.encode()).hexdigest()[:40]
    return f"<{digest}@{domain}>"


class EmailMessage(BaseModel):
    """One email ready to send to one recipient.

    ``from_address`` may be a bare address or ``Name <address>``. ``headers`` holds extra
    headers (``List-Unsubscribe``, ``X-Journey``); the standard ones are set by the provider.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    to_address: str
    to_name: str | None = None
    from_address: str
    subject: str
    text: str
    html: str | None = None
    message_id: str
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("to_address")
    @classmethod
    def _check_to_address(cls, value: str) -> str:
        if not _ADDRESS.fullmatch(value):
            raise ValueError("must be a single address like user@example.com")
        return value

    @field_validator("from_address")
    @classmethod
    def _check_from_address(cls, value: str) -> str:
        _no_line_breaks(value)
        if not _ADDRESS.fullmatch(parseaddr(value)[1]):
            raise ValueError("must be an address or 'Name <address>'")
        return value

    @field_validator("to_name", "subject")
    @classmethod
    def _check_header_text(cls, value: str | None) -> str | None:
        return None if value is None else _no_line_breaks(value)

    @field_validator("message_id")
    @classmethod
    def _check_message_id(cls, value: str) -> str:
        if not _MESSAGE_ID.fullmatch(value):
            raise ValueError("must look like <id@domain>; see message_id_for()")
        return value

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            if not _FIELD_NAME.fullmatch(name):
                raise ValueError(f"invalid header name {name!r}")
            if name.lower() in RESERVED_HEADERS or name.lower().startswith("content-"):
                raise ValueError(f"header {name!r} is set by the provider")
            _no_line_breaks(header_value)
        return value

    @property
    def envelope_sender(self) -> str:
        """The bare sender address, for the SMTP envelope."""
        return parseaddr(self.from_address)[1]


class DeliveryReceipt(BaseModel):
    """Proof that a provider accepted a message.

    ``provider_message_id`` is the id to look the message up by at the provider; ``detail``
    is the provider's own acknowledgement (an SMTP server's reply names its queue id).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    provider_message_id: str
    accepted_at: AwareDatetime
    detail: str | None = None


class EmailProvider(Protocol):
    """Anything that can deliver an ``EmailMessage``."""

    async def send(self, message: EmailMessage) -> DeliveryReceipt:
        """Hand ``message`` over; raise a ``DeliveryError`` subclass when it is not taken."""
        ...


def idempotency_key_for(send_key: str) -> str:
    """The key providers receive for one send: stable across retries, free of customer ids."""
    return hashlib.sha256(b"journeyman-send:" + send_key.encode()).hexdigest()[:48]


class SmsMessage(BaseModel):
    """One text message to one phone number (E.164, ``+886912345678``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    to_number: str = Field(pattern=r"^\+[1-9][0-9]{6,14}$")
    body: str = Field(min_length=1, max_length=1600)
    idempotency_key: str
    # Where the provider reports delivery (Twilio's StatusCallback); None: no callback.
    status_callback: str | None = None


class PushMessage(BaseModel):
    """One notification to one device token (Firebase Cloud Messaging)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device_token: str = Field(min_length=1, max_length=4096)
    title: str = Field(max_length=1024)
    body: str = Field(max_length=4096)
    data: dict[str, str] = Field(default_factory=dict)  # FCM data values are strings
    idempotency_key: str


class WebhookMessage(BaseModel):
    """One HTTP request to a customer-facing system (a CRM, a chat tool, a loyalty backend)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(pattern=r"^https?://")
    method: str = Field(default="POST", pattern=r"^(GET|POST|PUT|PATCH|DELETE)$")
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = ""
    idempotency_key: str


class SmsProvider(Protocol):
    async def send_sms(self, message: SmsMessage) -> DeliveryReceipt:
        """Hand ``message`` over; raise a ``DeliveryError`` subclass when it is not taken."""
        ...


class PushProvider(Protocol):
    async def send_push(self, message: PushMessage) -> DeliveryReceipt:
        """Hand ``message`` over; raise a ``DeliveryError`` subclass when it is not taken."""
        ...


class WebhookProvider(Protocol):
    async def send_webhook(self, message: WebhookMessage) -> DeliveryReceipt:
        """Make the request; raise a ``DeliveryError`` subclass when it does not succeed."""
        ...


class InAppMessage(BaseModel):
    """One message for the customer's in-app inbox, shown by the browser snippet or an app."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    customer_id: str
    title: str = Field(max_length=1024)
    body: str = Field(max_length=16_384)
    data: dict[str, str] = Field(default_factory=dict)
    idempotency_key: str


class InAppProvider(Protocol):
    async def send_in_app(self, message: InAppMessage) -> DeliveryReceipt:
        """Store ``message`` in the customer's inbox (idempotent by its key)."""
        ...
