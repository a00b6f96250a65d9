"""Deliver email through SendGrid's v3 Mail Send API.

A send is one ``POST /v3/mail/send`` with ``Authorization: Bearer <api key>`` and a JSON body
in SendGrid's documented shape: one personalization addressed to the recipient, ``from``,
``subject``, ``content`` (``text/plain`` first, then ``text/html``, as SendGrid requires),
``headers`` (the message's own, ``List-Unsubscribe`` and ``List-Unsubscribe-Post`` among them,
plus the deterministic ``Message-ID``) and ``custom_args`` carrying the Message-ID under
``journeyman_msg_id``, which SendGrid's event webhook hands back. A ``Reply-To`` header goes in
SendGrid's ``reply_to`` field, because SendGrid reserves the header.

SendGrid answers 202 when it queued the message; the receipt's ``provider_message_id`` is the
``X-Message-Id`` response header. Failures map onto ``journeyman.channels.errors``:

- 429, 408 and 5xx are retryable, with ``retry_after`` from ``Retry-After`` or, failing that,
  SendGrid's ``X-RateLimit-Reset``. 429, 408 and 503 are an explicit "not now"
  (``maybe_delivered=False``); after any other 5xx SendGrid's state is unknown.
- Connection failures are retryable and not delivered; a timeout or a dropped connection after
  the request went out is retryable and may be delivered.
- Every other answer is permanent: 400 (the body names the field), 401, 403, 413, a redirect,
  and 200, which SendGrid only sends in sandbox mode, for a message checked but not queued.
  A TLS certificate that does not verify is permanent too.

``code`` is the HTTP status. The API key is never part of an error or a repr.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

import httpx
from pydantic import SecretStr

from .base import DeliveryReceipt, EmailMessage
from .errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError
from .http import certificate_error, detail, exchange, retry_after_seconds

PROVIDER = "sendgrid"
DEFAULT_BASE_URL = "https://api.sendgrid.com"
SEND_PATH = "/v3/mail/send"
# The custom_args key under which the Message-ID travels to SendGrid's event webhook.
CORRELATION_ARG = "journeyman_msg_id"

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
# SendGrid's error texts are short; a long one (an HTML error page) is cut so a ledger
# reason stays readable.


def _address(value: str) -> dict[str, str]:
    name, address = parseaddr(value)
    return {"email": address, "name": name} if name else {"email": address}


def sendgrid_payload(message: EmailMessage) -> dict[str, Any]:
    """The Mail Send body for ``message``; ValueError when it has no body to send."""
    content = [
        {"type": kind, "value": value}
        for kind, value in (("text/plain", message.text), ("text/html", message.html))
        if value
    ]
    if not content:
        raise ValueError("the message has neither text nor HTML")
    recipient = {"email": message.to_address}
    if message.to_name:
        recipient["name"] = message.to_name
    headers = {"Message-ID": message.message_id}
    reply_to: dict[str, str] | None = None
    for name, value in message.headers.items():
        if name.lower() == "reply-to":
            reply_to = _address(value)
        else:
            headers[name] = value
    payload: dict[str, Any] = {
        "personalizations": [{"to": [recipient]}],
        "from": _address(message.from_address),
        "subject": message.subject,
        "content": content,
        "headers": headers,
        "custom_args": {CORRELATION_ARG: message.message_id},
    }
    if reply_to is not None:
        payload["reply_to"] = reply_to
    return payload


def checked_base_url(base_url: str) -> str:
    """``base_url`` without its trailing slash; https, or plain http to a loopback address."""
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
    # Before the connection exists the request cannot have reached SendGrid; after, it may.
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    reason = str(exc) or type(exc).__name__
    return RetryableDeliveryError(
        f"SendGrid request to {where} failed ({type(exc).__name__}): {reason}",
        provider=PROVIDER,
        maybe_delivered=sent,
    )


def _retry_after(response: httpx.Response) -> float | None:
    seconds = retry_after_seconds(response)
    if seconds is not None:
        return seconds
    # SendGrid's rate-limit headers say when the window resets, as a Unix time.
    try:
        reset = float(response.headers.get("x-ratelimit-reset", ""))
    except ValueError:
        return None
    return max(0.0, reset - time.time())


def _error_text(response: httpx.Response, secret: str) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list):
        parts = [
            ": ".join(str(item[key]) for key in ("field", "message") if item.get(key))
            for item in errors
            if isinstance(item, dict)
        ]
        if any(parts):
            return detail("; ".join(part for part in parts if part), secret)
    return detail(response.text, secret) or response.reason_phrase


def _refusal(response: httpx.Response, secret: str) -> DeliveryError:
    """Classify any answer but 202 from Mail Send."""
    status = response.status_code
    if 200 <= status < 300:
        return PermanentDeliveryError(
            f"SendGrid answered HTTP {status} instead of 202: the message was checked but not "
            "queued (sandbox mode?)",
            provider=PROVIDER,
            code=status,
        )
    text = f"SendGrid answered HTTP {status}: {_error_text(response, secret)}"
    if status in (408, 429) or status >= 500:
        return RetryableDeliveryError(
            text,
            provider=PROVIDER,
            code=status,
            maybe_delivered=status not in (408, 429, 503),
            retry_after=_retry_after(response),
        )
    if 300 <= status < 400:
        text += " (redirects are not followed: check the base URL)"
    return PermanentDeliveryError(text, provider=PROVIDER, code=status)


class SendGridProvider:
    """Sends each ``EmailMessage`` with one SendGrid Mail Send request.

    ``client`` is the worker's shared ``httpx.AsyncClient``
    (``journeyman.channels.http.shared_client``), which also sets the timeouts. ``base_url``
    is ``https://api.eu.sendgrid.com`` for EU regional subusers; plain http is accepted only
    for a loopback test server, so the key never crosses a network unencrypted.
    """

    name = PROVIDER

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_key: SecretStr | str,
        base_url: str = DEFAULT_BASE_URL,
    ) -> None:
        # Kept as SecretStr so a repr or log of this object cannot show it.
        self._api_key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        key = self._api_key.get_secret_value()
        if not key or any(ch.isspace() for ch in key):
            raise ValueError("api_key must be a SendGrid API key (no spaces or line breaks)")
        self._client = client
        self.base_url = checked_base_url(base_url)

    def __repr__(self) -> str:
        return f"SendGridProvider(base_url={self.base_url!r})"

    async def send(self, message: EmailMessage) -> DeliveryReceipt:
        """Hand ``message`` to SendGrid; raise a ``DeliveryError`` subclass when it is not taken."""
        try:
            payload = sendgrid_payload(message)
        except ValueError as exc:
            raise PermanentDeliveryError(
                f"message cannot be sent: {exc}", provider=PROVIDER
            ) from None
        key = self._api_key.get_secret_value()
        url = self.base_url + SEND_PATH
        try:
            response = await exchange(
                self._client,
                "POST",
                url,
                json=payload,
                headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
            )
        except httpx.TransportError as exc:
            # ``from None``: the httpx error holds the request, Authorization header included.
            raise _transport_error(exc, url) from None
        if response.status_code != 202:
            raise _refusal(response, key)
        provider_id = response.headers.get("x-message-id")
        return DeliveryReceipt(
            provider=PROVIDER,
            # 202 means queued whatever the headers say; without SendGrid's id the message
            # is still found by its Message-ID (also in custom_args).
            provider_message_id=provider_id or message.message_id,
            accepted_at=datetime.now(UTC),
            detail=None if provider_id else "SendGrid sent no X-Message-Id",
        )
