"""Send text messages through Twilio's Messages API, and read Twilio's status callbacks.

A send is one ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded, with
HTTP Basic authentication (Account SID, Auth Token). The message's ``idempotency_key`` goes in
the ``I-Twilio-Idempotency-Token`` header. Twilio documents that header on the webhooks it sends
rather than on this API, so Journeyman's delivery ledger, not Twilio, is what stops a second
send; ``maybe_delivered`` on a failure says whether Twilio may already have the message.

Failures map onto ``journeyman.channels.errors`` by HTTP status and Twilio's error ``code``:
429 and 5xx are retryable (with ``Retry-After`` when Twilio sends it); every other refusal is
permanent, among them 21211 (invalid ``To`` number), 21614 (not a mobile number) and 21610 (the
recipient replied STOP), which raises ``RecipientUnsubscribed`` so callers can record the
opt-out. The error ``code`` attribute is Twilio's error code when it gave one, else the HTTP
status.

Twilio later reports progress to the message's ``StatusCallback`` URL: check the request with
``verify_status_callback`` (Twilio's ``X-Twilio-Signature`` scheme) and turn its form fields into
a Journeyman delivery state with ``parse_status_callback``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import SecretStr

from .base import DeliveryReceipt, SmsMessage
from .errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError
from .http import certificate_error, detail, exchange, json_object, retry_after_seconds

PROVIDER = "twilio"
DEFAULT_BASE_URL = "https://api.twilio.com"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
SIGNATURE_HEADER = "X-Twilio-Signature"

# Twilio error codes a journey author is likely to meet; every 4xx is permanent regardless.
INVALID_NUMBER = 21211
UNSUBSCRIBED_RECIPIENT = 21610
NOT_MOBILE = 21614

# Twilio's reply texts are short; a long one is cut so a ledger reason stays readable.
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class RecipientUnsubscribed(PermanentDeliveryError):
    """The recipient opted out of messages from this sender (Twilio error 21610, "STOP")."""


def _checked_base_url(base_url: str) -> str:
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


def _transport_error(exc: httpx.TransportError) -> DeliveryError:
    refused = certificate_error(exc)
    if refused is not None:
        return PermanentDeliveryError(
            f"TLS certificate of the Twilio API refused: {refused.verify_message}",
            provider=PROVIDER,
        )
    # Before the connection exists the request cannot have reached Twilio; after, it may have.
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    reason = str(exc) or type(exc).__name__
    return RetryableDeliveryError(
        f"Twilio request failed ({type(exc).__name__}): {reason}",
        provider=PROVIDER,
        maybe_delivered=sent,
    )


def _refusal(response: httpx.Response, secret: str) -> DeliveryError:
    """Classify a non-2xx answer from the Messages API."""
    status = response.status_code
    body = json_object(response)
    twilio_code = body.get("code") if isinstance(body.get("code"), int) else None
    text = f"Twilio answered HTTP {status}"
    if twilio_code is not None:
        text += f", error {twilio_code}"
    if isinstance(body.get("message"), str) and body["message"]:
        text += f": {detail(body['message'], secret)}"
    code = twilio_code if twilio_code is not None else status
    if status == 429 or status >= 500:
        # 429 and 503 are an explicit "not now"; any other 5xx leaves Twilio's state unknown.
        return RetryableDeliveryError(
            text,
            provider=PROVIDER,
            code=code,
            maybe_delivered=status not in (429, 503),
            retry_after=retry_after_seconds(response),
        )
    if twilio_code == UNSUBSCRIBED_RECIPIENT:
        return RecipientUnsubscribed(text, provider=PROVIDER, code=code)
    if 300 <= status < 400:
        text += " (redirects are not followed: check the base URL)"
    return PermanentDeliveryError(text, provider=PROVIDER, code=code)


class TwilioSms:
    """Sends each ``SmsMessage`` as one Twilio Message, from ``from_number``.

    ``from_number`` is a Twilio phone number in E.164 form or an alphanumeric sender id.
    ``base_url`` points elsewhere only for tests: it must be https, or plain http to a
    loopback address, so the Auth Token never crosses a network unencrypted. ``client`` is
    the worker's shared ``httpx.AsyncClient`` (``journeyman.channels.http.shared_client``),
    which also sets the timeouts.
    """

    name = PROVIDER

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        account_sid: str,
        auth_token: SecretStr | str,
        from_number: str,
        base_url: str = DEFAULT_BASE_URL,
    ) -> None:
        if not account_sid or "/" in account_sid:
            raise ValueError("account_sid must be a Twilio Account SID (AC...)")
        if not from_number:
            raise ValueError("from_number is required")
        self._client = client
        self.account_sid = account_sid
        # Kept as SecretStr so a repr or log of this object cannot show it.
        self._auth_token = SecretStr(auth_token) if isinstance(auth_token, str) else auth_token
        if not self._auth_token.get_secret_value():
            raise ValueError("auth_token is required")
        self.from_number = from_number
        self.base_url = _checked_base_url(base_url)

    def __repr__(self) -> str:
        return f"TwilioSms(account_sid={self.account_sid!r}, from_number={self.from_number!r})"

    @property
    def messages_url(self) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    async def send_sms(self, message: SmsMessage) -> DeliveryReceipt:
        """Create the Twilio Message; raise a ``DeliveryError`` subclass when it is not taken."""
        form = {"To": message.to_number, "From": self.from_number, "Body": message.body}
        if message.status_callback is not None:
            form["StatusCallback"] = message.status_callback
        try:
            response = await exchange(
                self._client,
                "POST",
                self.messages_url,
                data=form,
                auth=(self.account_sid, self._auth_token.get_secret_value()),
                headers={IDEMPOTENCY_HEADER: message.idempotency_key, "Accept": "application/json"},
            )
        except httpx.TransportError as exc:
            raise _transport_error(exc) from None
        if not response.is_success:
            raise _refusal(response, self._auth_token.get_secret_value())
        body = json_object(response)
        sid = body.get("sid")
        if not isinstance(sid, str) or not sid:
            # Twilio said yes but the reply is unreadable: the message probably exists.
            raise RetryableDeliveryError(
                f"Twilio answered HTTP {response.status_code} without a message sid",
                provider=PROVIDER,
                maybe_delivered=True,
            )
        status = body.get("status")
        return DeliveryReceipt(
            provider=PROVIDER,
            provider_message_id=sid,
            accepted_at=datetime.now(UTC),
            detail=status if isinstance(status, str) else None,
        )


# --- status callbacks ------------------------------------------------------------------------

DeliveryState = Literal["queued", "sent", "delivered", "failed"]

# Twilio's MessageStatus values for outbound messages, folded onto Journeyman's states.
_STATES: dict[str, DeliveryState] = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}


@dataclass(frozen=True)
class StatusUpdate:
    """What one status callback says about one message.

    ``reason`` is Twilio's ``ErrorCode`` (``"30003"``: unreachable handset) for a failed
    message, else None. ``twilio_status`` keeps Twilio's own word (``undelivered``).
    """

    message_sid: str
    state: DeliveryState
    twilio_status: str
    reason: str | None = None


def delivery_state(message_status: str) -> DeliveryState:
    """The Journeyman state for one Twilio ``MessageStatus``; ValueError for others."""
    try:
        return _STATES[message_status]
    except KeyError:
        raise ValueError(
            f"unknown Twilio MessageStatus {message_status!r}; expected one of {sorted(_STATES)}"
        ) from None


def parse_status_callback(params: Mapping[str, str]) -> StatusUpdate:
    """Read a status callback's form fields; ValueError when they are not one."""
    sid = params.get("MessageSid") or params.get("SmsSid")
    status = params.get("MessageStatus") or params.get("SmsStatus")
    if not sid or not status:
        raise ValueError("a Twilio status callback needs MessageSid and MessageStatus")
    state = delivery_state(status)
    reason = (params.get("ErrorCode") or None) if state == "failed" else None
    return StatusUpdate(message_sid=sid, state=state, twilio_status=status, reason=reason)


def _pairs(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(params, Mapping):
        return [(str(k), str(v)) for k, v in params.items()]
    return [(str(k), str(v)) for k, v in params]


def _port_variants(url: str) -> set[str]:
    """``url`` as given, with its default port written out and with it left out.

    Twilio signs the URL as it was configured; a proxy or framework may add or drop the
    default port, so every form is tried, as Twilio's own libraries do.
    """
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    variants = {url}
    if default is None or parts.hostname is None:
        return variants
    userinfo = parts.netloc.rpartition("@")[0]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    prefix = f"{userinfo}@" if userinfo else ""
    try:
        port = parts.port
    except ValueError:
        return variants
    if port in (None, default):
        variants.add(urlunsplit(parts._replace(netloc=f"{prefix}{host}")))
        variants.add(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}")))
    return variants


def compute_signature(
    url: str,
    params: Mapping[str, str] | Iterable[tuple[str, str]],
    auth_token: SecretStr | str,
) -> str:
    """Twilio's request signature: base64 HMAC-SHA1, keyed by the Auth Token, over the URL
    followed by every POST parameter name and value, sorted by name (then value)."""
    token = auth_token.get_secret_value() if isinstance(auth_token, SecretStr) else auth_token
    grouped: dict[str, set[str]] = {}
    for name, value in _pairs(params):
        grouped.setdefault(name, set()).add(value)
    data = url + "".join(
        name + value for name in sorted(grouped) for value in sorted(grouped[name])
    )
    digest = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_status_callback(
    url: str,
    params: Mapping[str, str] | Iterable[tuple[str, str]],
    signature: str | None,
    auth_token: SecretStr | str,
) -> bool:
    """Whether ``signature`` (the ``X-Twilio-Signature`` header) proves Twilio sent this request.

    ``url`` is the full URL Twilio called, query string included, exactly as configured in
    ``StatusCallback`` (behind a proxy, the public URL, not the one the app sees); ``params``
    are the POST form fields. The comparison takes constant time.
    """
    if not signature:
        return False
    pairs = _pairs(params)
    given = signature.encode()
    matched = False
    for candidate in sorted(_port_variants(url)):
        expected = compute_signature(candidate, pairs, auth_token).encode()
        # Every variant is compared, so the time taken does not depend on which one matches.
        matched |= hmac.compare_digest(expected, given)
    return matched
