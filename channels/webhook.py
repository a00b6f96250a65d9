"""Call customer-facing systems (a CRM, a chat tool, a loyalty backend) with signed requests.

Each ``WebhookMessage`` becomes one HTTP request with the message's method, URL, headers and
body, plus three headers the sender writes itself:

- ``Journeyman-Timestamp``: the time of signing, in Unix seconds;
- ``Journeyman-Signature``: ``v1=`` and the hex HMAC-SHA256, keyed by the signing secret, of
  ``f"{timestamp}.{body}"``;
- ``Idempotency-Key``: the message's ``idempotency_key``, the same on every retry of one send.

A receiver checks the request with ``verify_signature``, which also refuses timestamps outside
a tolerance (five minutes by default), so a captured request cannot be replayed later; within
that window it drops repeats by ``Idempotency-Key``.

The sender makes one attempt: retries are the workflow's job. A 2xx answer is success; 408,
429 and 5xx answers, timeouts and connection failures are retryable (with ``Retry-After`` when
given); any other answer, redirects included (they are not followed), is permanent. Error
messages name only the URL's origin and the status: webhook URLs often carry a token in their
path or query, and answers can echo request headers.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from pydantic import SecretStr

from .base import DeliveryReceipt, WebhookMessage
from .errors import PermanentDeliveryError, RetryableDeliveryError
from .http import certificate_error, exchange, retry_after_seconds

PROVIDER = "webhook"
TIMESTAMP_HEADER = "Journeyman-Timestamp"
SIGNATURE_HEADER = "Journeyman-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE = 300.0

# Headers the sender writes (or HTTP itself frames): a message setting them is refused.
RESERVED_HEADERS = frozenset(
    {
        TIMESTAMP_HEADER.lower(),
        SIGNATURE_HEADER.lower(),
        IDEMPOTENCY_HEADER.lower(),
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
    }
)
# RFC 9110 field names ("token"); values in printable ASCII and tab, as HTTP clients send them.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
_RETRYABLE_4XX = frozenset({408, 429})


def sign(secret: SecretStr | str, timestamp: int, body: str | bytes) -> str:
    """The ``Journeyman-Signature`` value for ``body`` signed at ``timestamp``."""
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    payload = body.encode() if isinstance(body, str) else body
    digest = hmac.new(key.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={digest.hexdigest()}"


def verify_signature(
    secret: SecretStr | str,
    timestamp: str | None,
    body: str | bytes,
    header: str | None,
    *,
    now: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> bool:
    """Whether a received webhook is genuine and recent.

    ``timestamp`` and ``header`` are the ``Journeyman-Timestamp`` and ``Journeyman-Signature``
    headers as received, ``body`` the raw request body (bytes as read, before any parsing).
    False when either header is missing or malformed, when the timestamp is more than
    ``tolerance`` seconds from ``now`` (default: this machine's clock) either way, or when no
    ``v1=`` signature in the header matches; the comparison takes constant time. The header
    may list several signatures separated by commas; any valid one is enough.
    """
    if not timestamp or not header or not timestamp.isascii() or not timestamp.isdigit():
        return False
    signed_at = int(timestamp)
    current = time.time() if now is None else now
    if abs(current - signed_at) > tolerance:
        return False
    expected = sign(secret, signed_at, body).encode()
    matched = False
    for part in header.split(","):
        version, _, value = part.strip().partition("=")
        if version == SIGNATURE_VERSION and value:
            matched |= hmac.compare_digest(expected, f"{version}={value}".encode())
    return matched


def _origin(url: str) -> str:
    """Scheme, host and port of ``url``, checked: what an error may say about where a request
    went. PermanentDeliveryError when the URL cannot be requested at all."""
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL:
        raise PermanentDeliveryError(
            "the webhook URL is not a valid URL", provider=PROVIDER
        ) from None
    port = target.port
    if target.scheme not in ("http", "https") or not target.host or not 0 < (port or 80) < 65536:
        raise PermanentDeliveryError(
            "the webhook URL needs http or https, a host and a valid port", provider=PROVIDER
        )
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{target.scheme}://{host}" + (f":{port}" if port else "")


class WebhookSender:
    """Makes each ``WebhookMessage``'s request, signed with ``signing_secret``.

    ``timeout`` bounds the whole of each request (connect, send, the answer) in seconds; it
    replaces the shared client's default. ``clock`` changes only for tests.
    """

    name = PROVIDER

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        signing_secret: SecretStr | str,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        secret = SecretStr(signing_secret) if isinstance(signing_secret, str) else signing_secret
        if len(secret.get_secret_value()) < 16:
            raise ValueError("signing_secret must be at least 16 characters")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._client = client
        # Kept as SecretStr so a repr or log of this object cannot show it.
        self._secret = secret
        self.timeout = timeout
        self._clock = clock

    def __repr__(self) -> str:
        return f"WebhookSender(timeout={self.timeout})"

    def _headers(self, message: WebhookMessage, timestamp: int, where: str) -> dict[str, str]:
        for name, value in message.headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise PermanentDeliveryError(
                    f"webhook to {where}: invalid header name {name!r}", provider=PROVIDER
                )
            if name.lower() in RESERVED_HEADERS:
                raise PermanentDeliveryError(
                    f"webhook to {where}: header {name!r} is set by the sender", provider=PROVIDER
                )
            if not _HEADER_VALUE.fullmatch(value):
                # The value is not quoted: it may be a credential for the receiving system.
                raise PermanentDeliveryError(
                    f"webhook to {where}: header {name!r} must be printable ASCII "
                    "(no control characters)",
                    provider=PROVIDER,
                )
        return {
            **message.headers,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._secret, timestamp, message.body),
            IDEMPOTENCY_HEADER: message.idempotency_key,
        }

    async def send_webhook(self, message: WebhookMessage) -> DeliveryReceipt:
        """Make the request once; raise ``PermanentDeliveryError`` or ``RetryableDeliveryError``."""
        where = _origin(message.url)
        timestamp = int(self._clock())
        headers = self._headers(message, timestamp, where)
        try:
            # The answer's body is never used (nor quoted: it can echo request headers), so
            # it is not read: a receiver answering with endless data costs nothing.
            response = await exchange(
                self._client,
                message.method,
                message.url,
                headers=headers,
                content=message.body.encode() if message.body else None,
                timeouts=httpx.Timeout(self.timeout),
                read_answer=False,
            )
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError) as exc:
            # The request cannot be made at all; the same message will fail the same way.
            raise PermanentDeliveryError(
                f"webhook to {where} cannot be sent ({type(exc).__name__})", provider=PROVIDER
            ) from None
        except httpx.TransportError as exc:
            refused = certificate_error(exc)
            if refused is not None:
                raise PermanentDeliveryError(
                    f"webhook to {where}: TLS certificate refused: {refused.verify_message}",
                    provider=PROVIDER,
                ) from None
            # Before the connection exists the receiver cannot have the request; after, it may.
            sent = not isinstance(
                exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
            )
            raise RetryableDeliveryError(
                f"webhook to {where} failed ({type(exc).__name__})",
                provider=PROVIDER,
                maybe_delivered=sent,
            ) from None
        status = response.status_code
        if response.is_success:
            return DeliveryReceipt(
                provider=PROVIDER,
                provider_message_id=message.idempotency_key,
                accepted_at=datetime.now(UTC),
                detail=f"HTTP {status}",
            )
        text = f"webhook to {where} answered HTTP {status}"
        if status in _RETRYABLE_4XX or status >= 500:
            # 408, 429 and 503 mean the request was not acted on; other 5xx leave it unknown.
            raise RetryableDeliveryError(
                text,
                provider=PROVIDER,
                code=status,
                maybe_delivered=status not in (*_RETRYABLE_4XX, 503),
                retry_after=retry_after_seconds(response),
            )
        if 300 <= status < 400:
            text += " (redirects are not followed: use the final URL)"
        raise PermanentDeliveryError(text, provider=PROVIDER, code=status)
