"""Deliver email through Postmark's Email API.

A send is one ``POST /email`` with the server token in ``X-Postmark-Server-Token`` and a JSON
body in Postmark's documented shape: ``From``, ``To`` (``Name <address>``), ``Subject``,
``TextBody`` and/or ``HtmlBody``, ``Headers`` as ``[{Name, Value}]`` (``List-Unsubscribe`` and
``List-Unsubscribe-Post`` among them), ``MessageStream`` and ``Metadata`` carrying the
Message-ID under ``journeyman_msg_id``, which Postmark's webhooks hand back. A ``Reply-To``
header goes in Postmark's ``ReplyTo`` field. Postmark writes its own ``Message-ID``.

Postmark answers 200 with ``ErrorCode`` 0 and a ``MessageID`` when it took the message.
Failures map onto ``journeyman.channels.errors``:

- 422 is permanent: the body's ``ErrorCode`` says why, e.g. 300 (invalid email request) or 406
  (inactive recipient: the address bounced or complained before, raised as
  ``InactiveRecipient`` so callers can suppress it). 401 (bad token), 413, other 4xx and
  redirects are permanent too, as is a TLS certificate that does not verify.
- 429, 408 and 5xx are retryable, with ``retry_after`` from ``Retry-After``; 429, 408 and 503
  are an explicit "not now" (``maybe_delivered=False``), after any other 5xx Postmark's state
  is unknown.
- Connection failures are retryable and not delivered; a timeout or a dropped connection after
  the request went out is retryable and may be delivered.

``code`` is Postmark's ``ErrorCode`` when the answer carries one, else the HTTP status. The
server token is never part of an error or a repr.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import parseaddr
from typing import Any

import httpx
from pydantic import SecretStr

from .base import DeliveryReceipt, EmailMessage
from .errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError
from .http import certificate_error, detail, exchange, json_object, retry_after_seconds

PROVIDER = "postmark"
DEFAULT_BASE_URL = "https://api.postmarkapp.com"
SEND_PATH = "/email"
# The Metadata key under which the Message-ID travels to Postmark's webhooks (Postmark allows
# names up to 20 characters and values up to 80).
CORRELATION_KEY = "journeyman_msg_id"
_MAX_METADATA_VALUE = 80

INVALID_EMAIL_REQUEST = 300
INACTIVE_RECIPIENT = 406

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class InactiveRecipient(PermanentDeliveryError):
    """Postmark will not send to this address (ErrorCode 406): it bounced or complained."""


def _mailbox(name: str, address: str) -> str:
    """``Name <address>``, the name quoted where Postmark needs its punctuation escaped."""
    if not name:
        return address
    try:
        return str(Address(display_name=name, addr_spec=address))
    except (HeaderParseError, ValueError, IndexError):
        # The email package refuses some valid addresses (a non-ASCII local part); quote
        # the name by hand then.
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{address}>'


def postmark_payload(message: EmailMessage, *, message_stream: str) -> dict[str, Any]:
    """The ``/email`` body for ``message``; ValueError when it has no body to send."""
    if not message.text and not message.html:
        raise ValueError("the message has neither text nor HTML")
    sender_name, sender = parseaddr(message.from_address)
    payload: dict[str, Any] = {
        "From": _mailbox(sender_name, sender),
        "To": _mailbox(message.to_name or "", message.to_address),
        "Subject": message.subject,
        "MessageStream": message_stream,
        # Message-IDs from message_id_for start with the send's digest, so a cut one still
        # identifies the send.
        "Metadata": {CORRELATION_KEY: message.message_id[:_MAX_METADATA_VALUE]},
    }
    if message.text:
        payload["TextBody"] = message.text
    if message.html:
        payload["HtmlBody"] = message.html
    headers: list[dict[str, str]] = []
    for name, value in message.headers.items():
        if name.lower() == "reply-to":
            payload["ReplyTo"] = value
        else:
            headers.append({"Name": name, "Value": value})
    if headers:
        payload["Headers"] = headers
    return payload


def _checked_base_url(base_url: str) -> str:
    url = httpx.URL(base_url)
    if not url.host or not (
        url.scheme == "https" or (url.scheme == "http" and url.host in _LOOPBACK)
    ):
        raise ValueError(
            "base_url must be https://HOST (plain http:// only to a loopback test server), "
            f"not {base_url!r}"
        )
    return base_url.rstrip("/")


def _transport_error(exc: httpx.TransportError, where: str) -> DeliveryError:
    refused = certificate_error(exc)
    if refused is not None:
        return PermanentDeliveryError(
            f"TLS certificate of {where} refused: {refused.verify_message}", provider=PROVIDER
        )
    # Before the connection exists the request cannot have reached Postmark; after, it may.
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    reason = str(exc) or type(exc).__name__
    return RetryableDeliveryError(
        f"Postmark request to {where} failed ({type(exc).__name__}): {reason}",
        provider=PROVIDER,
        maybe_delivered=sent,
    )


def _error_code(body: dict[str, Any]) -> int | None:
    code = body.get("ErrorCode")
    # bool is an int in Python; Postmark's codes are plain numbers.
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _refusal(response: httpx.Response, body: dict[str, Any], secret: str) -> DeliveryError:
    """Classify an answer that is not a 200 with ErrorCode 0."""
    status = response.status_code
    error_code = _error_code(body)
    text = f"Postmark answered HTTP {status}"
    if error_code:
        text += f", ErrorCode {error_code}"
    said = body.get("Message") if isinstance(body.get("Message"), str) else None
    text += f": {detail(said or response.text, secret) or response.reason_phrase}"
    code = error_code or status
    if status in (408, 429) or status >= 500:
        return RetryableDeliveryError(
            text,
            provider=PROVIDER,
            code=code,
            maybe_delivered=status not in (408, 429, 503),
            retry_after=retry_after_seconds(response),
        )
    if error_code == INACTIVE_RECIPIENT:
        return InactiveRecipient(text, provider=PROVIDER, code=code)
    if 300 <= status < 400:
        text += " (redirects are not followed: check the base URL)"
    return PermanentDeliveryError(text, provider=PROVIDER, code=code)


class PostmarkProvider:
    """Sends each ``EmailMessage`` with one Postmark ``/email`` request.

    ``message_stream`` is the Postmark stream to send through: ``outbound`` (transactional,
    Postmark's default) or a broadcast stream for marketing journeys. ``client`` is the
    worker's shared ``httpx.AsyncClient`` (``journeyman.channels.http.shared_client``), which
    also sets the timeouts; plain http ``base_url`` is accepted only for a loopback test server.
    """

    name = PROVIDER

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        server_token: SecretStr | str,
        message_stream: str = "outbound",
        base_url: str = DEFAULT_BASE_URL,
    ) -> None:
        # Kept as SecretStr so a repr or log of this object cannot show it.
        self._token = SecretStr(server_token) if isinstance(server_token, str) else server_token
        token = self._token.get_secret_value()
        if not token or any(ch.isspace() for ch in token):
            raise ValueError("server_token must be a Postmark server token (no spaces)")
        if not message_stream.strip():
            raise ValueError("message_stream must name a Postmark message stream")
        self._client = client
        self.message_stream = message_stream
        self.base_url = _checked_base_url(base_url)

    def __repr__(self) -> str:
        return (
            f"PostmarkProvider(base_url={self.base_url!r}, message_stream={self.message_stream!r})"
        )

    async def send(self, message: EmailMessage) -> DeliveryReceipt:
        """Hand ``message`` to Postmark; raise a ``DeliveryError`` subclass when it is not taken."""
        try:
            payload = postmark_payload(message, message_stream=self.message_stream)
        except ValueError as exc:
            raise PermanentDeliveryError(
                f"message cannot be sent: {exc}", provider=PROVIDER
            ) from None
        token = self._token.get_secret_value()
        url = self.base_url + SEND_PATH
        try:
            response = await exchange(
                self._client,
                "POST",
                url,
                json=payload,
                headers={"X-Postmark-Server-Token": token, "Accept": "application/json"},
            )
        except httpx.TransportError as exc:
            # ``from None``: the httpx error holds the request, token header included.
            raise _transport_error(exc, url) from None
        body = json_object(response)
        if not response.is_success or _error_code(body):
            raise _refusal(response, body, token)
        provider_id = body.get("MessageID")
        if not isinstance(provider_id, str) or not provider_id:
            # A 200 means Postmark took it; without its id the message is still found by
            # the Metadata correlation key.
            provider_id = message.message_id
        submitted = body.get("SubmittedAt")
        return DeliveryReceipt(
            provider=PROVIDER,
            provider_message_id=provider_id,
            accepted_at=datetime.now(UTC),
            detail=f"submitted at {submitted}" if isinstance(submitted, str) else None,
        )
