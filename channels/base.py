"""What a provider sends and what it hands back: the message, the receipt and the protocol.

Every channel follows the same shape: a validated message model in, a ``DeliveryReceipt``
out, errors from ``journeyman.channels.errors``. Email is the first; SMS, push and webhooks
come later behind their own small protocol of the same form.
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
