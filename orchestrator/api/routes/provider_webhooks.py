"""``POST /webhooks/sendgrid`` and ``POST /webhooks/twilio``: providers report on messages.

SendGrid's Event Webhook posts a JSON array of events, signed with ECDSA P-256 over the
``X-Twilio-Email-Event-Webhook-Timestamp`` header followed by the raw body (SHA-256, the
signature in ``X-Twilio-Email-Event-Webhook-Signature`` as base64 DER); it is checked with
the public key SendGrid shows for the webhook. Twilio's status callback posts form fields,
signed in ``X-Twilio-Signature`` with the account's Auth Token over the callback URL and the
sorted fields (``journeyman.channels.twilio.verify_status_callback``).

A request whose signature does not verify gets 403 and changes nothing; a signed body that is
not what the provider sends gets 400 and changes nothing. A provider that is not configured
answers 503 (SendGrid keeps retrying, so nothing is lost while it is being set up). Each event
is recorded once (``journeyman.orchestrator.storage.delivery_states``); bounces and complaints
also put the address on the suppression list.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, SecretStr

from journeyman.channels import twilio
from journeyman.orchestrator.storage import delivery_states as states
from journeyman.orchestrator.storage.delivery_states import DeliveryEvent, State
from journeyman.orchestrator.tracking import consent

from ..auth import ServicesDep
from ..errors import ApiError, error_responses

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

log = logging.getLogger(__name__)

router = APIRouter(prefix="/webhooks", tags=["provider webhooks"])

SENDGRID_PATH: Final = "/webhooks/sendgrid"
TWILIO_PATH: Final = "/webhooks/twilio"
SENDGRID_SIGNATURE_HEADER: Final = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER: Final = "X-Twilio-Email-Event-Webhook-Timestamp"
# journeyman.channels.sendgrid.CORRELATION_ARG: the custom argument carrying the Message-ID.
SENDGRID_MESSAGE_ID_ARG: Final = "journeyman_msg_id"
# SendGrid batches events; a batch is well under a megabyte, the rest is headroom.
DEFAULT_MAX_BODY_BYTES: Final = 4 * 1024 * 1024

# SendGrid's reasons for dropping a message that name one of its suppression lists.
_SENDGRID_LISTS: Final = frozenset(
    {"bounced address", "unsubscribed address", "spam reporting address", "invalid"}
)
_MESSAGE_ID: Final = re.compile(r"<([0-9a-f]{40})@[^<>@\s]+>")


@dataclass(frozen=True)
class ProviderWebhookKeys:
    """What the provider webhooks need; a provider left as None answers 503.

    ``sendgrid_public_key`` is the webhook's verification key as SendGrid shows it (base64
    DER) or as PEM. ``twilio_auth_token`` is the Auth Token of the account that sends;
    ``public_url`` is where Twilio reaches this API (``https://journeys.example.com``): Twilio
    signs the URL it called, so the app cannot check a signature without it.
    """

    sendgrid_public_key: str | None = None
    twilio_auth_token: SecretStr | None = None
    public_url: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


@dataclass(frozen=True)
class _Installed:
    sendgrid_key: EllipticCurvePublicKey | None
    twilio_auth_token: SecretStr | None
    twilio_url: str | None
    max_body_bytes: int


def status_callback_url(public_url: str) -> str:
    """The ``StatusCallback`` URL to give Twilio for each message."""
    return public_url.rstrip("/") + TWILIO_PATH


def load_sendgrid_public_key(text: str) -> EllipticCurvePublicKey:
    """The P-256 public key in ``text`` (base64 DER, as SendGrid shows it, or PEM)."""
    try:
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import (
            load_der_public_key,
            load_pem_public_key,
        )
    except ImportError:
        raise RuntimeError(
            "checking SendGrid webhook signatures needs the 'cryptography' package"
        ) from None
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem_public_key(text.encode())
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, TypeError):
        raise ValueError(
            "the SendGrid verification key is not a public key: paste the key SendGrid shows"
            " under Mail Settings > Event Webhook (base64) or a PEM public key"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("the SendGrid verification key must be an ECDSA P-256 public key")
    return key


def verify_sendgrid_signature(
    key: EllipticCurvePublicKey, *, payload: bytes, signature: str, timestamp: str
) -> bool:
    """Whether ``signature`` is SendGrid's over ``timestamp`` followed by the raw ``payload``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        der = base64.b64decode(signature.strip(), validate=True)
        key.verify(der, timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error, UnicodeEncodeError):
        return False
    return True


def install_provider_webhooks(app: FastAPI, keys: ProviderWebhookKeys) -> None:
    """Configure the webhook routes of ``app``; ValueError names a key that cannot be used."""
    if keys.twilio_auth_token is not None and not keys.public_url:
        raise ValueError(
            "Twilio status callbacks need the public URL of the API: Twilio signs the URL it called"
        )
    sendgrid_key = (
        load_sendgrid_public_key(keys.sendgrid_public_key) if keys.sendgrid_public_key else None
    )
    app.state.provider_webhooks = _Installed(
        sendgrid_key=sendgrid_key,
        twilio_auth_token=keys.twilio_auth_token,
        twilio_url=status_callback_url(keys.public_url) if keys.public_url else None,
        max_body_bytes=keys.max_body_bytes,
    )


def _installed(request: Request) -> _Installed:
    found = getattr(request.app.state, "provider_webhooks", None)
    return found if isinstance(found, _Installed) else _Installed(None, None, None, 0)


def _not_configured(provider: str, what: str) -> ApiError:
    return ApiError(503, "not_configured", f"{provider} webhooks are not configured: {what}")


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = ApiError(413, "payload_too_large", f"request body is larger than {limit} bytes")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > limit:
            raise too_large
    return bytes(raw)


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- SendGrid ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SendGridEvent:
    event: DeliveryEvent
    message_digest: str | None
    address: str | None
    suppression: consent.SuppressionReason | None


def _sendgrid_state(item: dict[str, Any]) -> tuple[State | None, str | None]:
    """The state a SendGrid event stands for, and the reason kept with it."""
    name, address = item["event"], item.get("email")
    text = states.short_reason(
        str(item.get("reason") or item.get("response") or item.get("status") or "") or None,
        address=address if isinstance(address, str) else None,
    )
    if name == "processed":
        return "queued", None
    if name == "delivered":
        return "delivered", None
    if name == "open":
        # A machine open (a mail app fetching images on arrival) proves delivery, not reading.
        return ("delivered" if item.get("sg_machine_open") is True else "opened"), None
    if name == "click":
        return "clicked", None
    if name == "spamreport":
        return "complained", "spam report"
    if name == "bounce":
        kind = str(item.get("type") or "bounce")
        if kind == "bounce":
            return "bounced", text
        # blocked, expired: this message failed; the address itself is not known to be bad.
        return "failed", f"{kind}: {text}" if text else kind
    if name == "dropped":
        if text is not None and text.lower() in _SENDGRID_LISTS:
            return "suppressed", f"SendGrid suppression list: {text}"
        return "failed", f"dropped by SendGrid: {text}" if text else "dropped by SendGrid"
    # deferred (SendGrid retries), unsubscribe, group_unsubscribe, group_resubscribe and
    # event types SendGrid adds later are recorded without changing the state.
    return None, text if name == "deferred" else None


def _sendgrid_event(item: Any, index: int) -> _SendGridEvent:
    """Check one event of the batch; ValueError says what is wrong with it."""
    where = f"event [{index}]"
    if not isinstance(item, dict):
        raise ValueError(f"{where} is not a JSON object")
    name, stamp = item.get("event"), item.get("timestamp")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where} has no 'event' name")
    if isinstance(stamp, bool) or not isinstance(stamp, int | float) or not math.isfinite(stamp):
        raise ValueError(f"{where} has no Unix 'timestamp'")
    try:
        occurred_at = datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{where}: 'timestamp' {stamp} is out of range") from None
    for field in ("sg_event_id", "sg_message_id", "email", SENDGRID_MESSAGE_ID_ARG):
        if item.get(field) is not None and not isinstance(item[field], str):
            raise ValueError(f"{where}: {field!r} must be a string")
    payload_sha256 = _digest(item)
    state, reason = _sendgrid_state(item)
    sg_message_id = item.get("sg_message_id") or None
    found = _MESSAGE_ID.fullmatch(item.get(SENDGRID_MESSAGE_ID_ARG) or "")
    suppression: consent.SuppressionReason | None = None
    if state == "bounced":
        suppression = "bounce"
    elif state == "complained":
        suppression = "complaint"
    return _SendGridEvent(
        event=DeliveryEvent(
            provider="sendgrid",
            # Events without an id (very old accounts) are told apart by their content.
            event_id=item.get("sg_event_id") or f"sha256:{payload_sha256}",
            event=name,
            state=state,
            occurred_at=occurred_at,
            payload_sha256=payload_sha256,
            # sg_message_id is the X-Message-Id of the send, then a dot and SendGrid's suffix.
            provider_message_id=sg_message_id.split(".", 1)[0] if sg_message_id else None,
            reason=reason,
        ),
        message_digest=found.group(1) if found else None,
        address=item.get("email") or None,
        suppression=suppression,
    )


def parse_sendgrid_events(raw: bytes) -> list[_SendGridEvent]:
    """The events of a SendGrid batch; ValueError when the body is not one."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, list):
        raise ValueError("body must be a JSON array of events")
    return [_sendgrid_event(item, index) for index, item in enumerate(body)]


class SendGridResult(BaseModel):
    events: int  # in the batch
    recorded: int  # new events matched to a delivery
    duplicates: int  # recorded before (SendGrid retried)
    unmatched: int  # no delivery found: kept, applied if the send path attaches them later


_RESPONSES = error_responses(
    400,
    403,
    413,
    503,
    s400="signed, but not what the provider sends",
    s403="unsigned, or the signature does not verify",
    s503="this provider's webhook is not configured",
)


@router.post("/sendgrid", summary="SendGrid Event Webhook (signed)", responses=_RESPONSES)
async def sendgrid_events(request: Request, services: ServicesDep) -> SendGridResult:
    installed = _installed(request)
    if installed.sendgrid_key is None:
        raise _not_configured("SendGrid", "no Event Webhook verification key is set")
    raw = await _read_body(request, installed.max_body_bytes)
    signature = request.headers.get(SENDGRID_SIGNATURE_HEADER)
    timestamp = request.headers.get(SENDGRID_TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise ApiError(
            403,
            "forbidden",
            f"unsigned request: {SENDGRID_SIGNATURE_HEADER} and {SENDGRID_TIMESTAMP_HEADER}"
            " are required (enable the Signed Event Webhook in SendGrid)",
        )
    if not verify_sendgrid_signature(
        installed.sendgrid_key, payload=raw, signature=signature, timestamp=timestamp
    ):
        log.warning("SendGrid webhook request with a signature that does not verify")
        raise ApiError(403, "forbidden", "signature does not verify with the configured key")
    try:
        parsed = parse_sendgrid_events(raw)
    except ValueError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    result = SendGridResult(events=len(parsed), recorded=0, duplicates=0, unmatched=0)
    async with services.pool.acquire() as conn, conn.transaction():
        for item in parsed:
            event = item.event
            send_key = None
            if item.message_digest is not None:
                send_key = await states.send_key_for_message_digest(conn, item.message_digest)
            if send_key is None and event.provider_message_id is not None:
                send_key = await states.send_key_for_provider_id(conn, event.provider_message_id)
            recorded = await states.record_event(conn, _with_key(event, send_key))
            if recorded.duplicate:
                result.duplicates += 1
            elif not recorded.matched:
                result.unmatched += 1
            else:
                result.recorded += 1
                if item.suppression is not None:
                    await _suppress(conn, item, recorded)
    return result


def _with_key(event: DeliveryEvent, send_key: str | None) -> DeliveryEvent:
    return event if send_key is None else replace(event, send_key=send_key)


async def _suppress(
    conn: asyncpg.Connection, item: _SendGridEvent, recorded: states.Recorded
) -> None:
    """A bounce stops mail to the address; a complaint to the address and the customer."""
    address = item.address or recorded.recipient
    customer_id = recorded.customer_id if item.suppression == "complaint" else None
    if address is None and customer_id is None:
        return
    assert item.suppression is not None
    await consent.suppress(
        conn,
        channel="email",
        reason=item.suppression,
        address=address,
        customer_id=customer_id,
        send_key=recorded.send_key,
        detail=item.event.reason,
    )


# --- Twilio ------------------------------------------------------------------------------------


class TwilioResult(BaseModel):
    duplicate: bool  # recorded before
    matched: bool  # a delivery has this MessageSid (else kept until the send path attaches it)
    status: str | None  # the delivery's state now


def _twilio_state(update: twilio.StatusUpdate) -> tuple[State, str | None]:
    if update.twilio_status == "read":
        return "opened", None  # a read receipt (WhatsApp) is an open
    if update.state != "failed":
        return update.state, None
    code = f", error {update.reason}" if update.reason else ""
    return "failed", f"Twilio {update.twilio_status}{code}"


@router.post("/twilio", summary="Twilio message status callback (signed)", responses=_RESPONSES)
async def twilio_status(request: Request, services: ServicesDep) -> TwilioResult:
    installed = _installed(request)
    if installed.twilio_auth_token is None or installed.twilio_url is None:
        raise _not_configured("Twilio", "no Auth Token and public URL are set")
    raw = await _read_body(request, installed.max_body_bytes)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise ApiError(400, "invalid_request", "a status callback is a form-encoded POST")
    try:
        params = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_request", "form body is not UTF-8") from None
    query = request.scope.get("query_string", b"").decode("latin-1")
    url = installed.twilio_url + (f"?{query}" if query else "")
    signature = request.headers.get(twilio.SIGNATURE_HEADER)
    if not twilio.verify_status_callback(url, params, signature, installed.twilio_auth_token):
        log.warning("Twilio status callback with a signature that does not verify for %s", url)
        raise ApiError(403, "forbidden", f"{twilio.SIGNATURE_HEADER} does not verify for {url}")
    fields = dict(params)
    try:
        update = twilio.parse_status_callback(fields)
    except ValueError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    state, reason = _twilio_state(update)
    async with services.pool.acquire() as conn, conn.transaction():
        send_key = await states.send_key_for_provider_id(conn, update.message_sid)
        recorded = await states.record_event(
            conn,
            DeliveryEvent(
                provider="twilio",
                # One callback per status of a message; a retried callback repeats it.
                event_id=f"{update.message_sid}/{update.twilio_status}",
                event=update.twilio_status,
                state=state,
                occurred_at=datetime.now(UTC),
                payload_sha256=_digest(sorted(params)),
                send_key=send_key,
                provider_message_id=update.message_sid,
                reason=reason,
            ),
        )
    return TwilioResult(
        duplicate=recorded.duplicate, matched=recorded.matched, status=recorded.status
    )
