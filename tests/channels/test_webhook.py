"""The webhook sender against a real receiver that checks signatures, and the receivers' check."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from journeyman.channels import (
    PermanentDeliveryError,
    RetryableDeliveryError,
    WebhookMessage,
    WebhookSender,
    idempotency_key_for,
    verify_signature,
)
from journeyman.channels.http import shared_client
from journeyman.channels.webhook import sign

from .messaging_servers import WebhookReceiver, hex_hmac_sha256, unused_port

SECRET = "whsec-journeyman-7c1f9a2e4b6d8f00"
BODY = '{"event":"coupon_expiring","customer":"c-7","points":1200}'
CRM_KEY = "crm-api-key-3e5f7a9b"


class Certificate(Protocol):
    """The ``certificate`` fixture from conftest.py."""

    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext: ...


def hook(url: str, **overrides: Any) -> WebhookMessage:
    fields: dict[str, Any] = {
        "url": url,
        "headers": {"Content-Type": "application/json", "Authorization": f"Bearer {CRM_KEY}"},
        "body": BODY,
        "idempotency_key": idempotency_key_for("journey-3/customer-7/crm-sync/0"),
    }
    fields.update(overrides)
    return WebhookMessage(**fields)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(secret=SECRET) as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with shared_client() as running:
        yield running


def sender(client: httpx.AsyncClient, **options: Any) -> WebhookSender:
    options.setdefault("signing_secret", SECRET)
    return WebhookSender(client, **options)


async def test_request_is_sent_as_given_and_signed(
    client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    message = hook(f"{receiver.url}/hooks/crm?source=journeyman")
    signed_at = int(time.time())
    receipt = await sender(client, clock=lambda: signed_at + 0.75).send_webhook(message)

    [request] = receiver.requests
    assert request.method == "POST"
    assert (request.path, request.query) == ("/hooks/crm", "source=journeyman")
    assert request.body == BODY.encode()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == f"Bearer {CRM_KEY}"
    assert request.headers["idempotency-key"] == message.idempotency_key
    assert request.headers["journeyman-timestamp"] == str(signed_at)
    expected = hex_hmac_sha256(SECRET, f"{signed_at}.{BODY}".encode())
    assert request.headers["journeyman-signature"] == f"v1={expected}"
    assert receipt.provider == "webhook"
    assert receipt.provider_message_id == message.idempotency_key
    assert receipt.detail == "HTTP 200"


async def test_real_clock_signature_is_accepted_by_the_receiver(
    client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    await sender(client).send_webhook(hook(f"{receiver.url}/hooks/crm"))
    assert len(receiver.accepted) == 1


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_every_method_is_sent_as_given(
    client: httpx.AsyncClient, receiver: WebhookReceiver, method: str
) -> None:
    body = "" if method in ("GET", "DELETE") else BODY
    await sender(client).send_webhook(hook(f"{receiver.url}/x", method=method, body=body))
    [request] = receiver.accepted
    assert request.method == method
    assert request.body == body.encode()


async def test_a_retry_carries_the_same_key_and_the_receiver_drops_it(
    client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    message = hook(f"{receiver.url}/hooks/crm")
    await sender(client).send_webhook(message)
    await sender(client).send_webhook(message)
    assert len(receiver.requests) == 2
    assert len(receiver.accepted) == 1
    assert receiver.duplicates == 1


async def test_a_captured_request_replayed_is_refused_or_dropped(
    client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    await sender(client).send_webhook(hook(f"{receiver.url}/hooks/crm"))
    [captured] = receiver.requests
    headers = {k: v for k, v in captured.headers.items() if k not in ("host", "content-length")}
    # Replayed at once: the signature still holds, the receiver drops it by its key.
    replay = await client.post(f"{receiver.url}/hooks/crm", content=captured.body, headers=headers)
    assert replay.json() == {"ok": True, "duplicate": True}
    # Replayed later than the tolerance: the signature check itself refuses it.
    signed_at = int(captured.headers["journeyman-timestamp"])
    late = signed_at + 301
    assert not verify_signature(
        SECRET, str(signed_at), captured.body, captured.headers["journeyman-signature"], now=late
    )


async def test_stale_clock_is_refused_by_the_receiver_as_permanent(
    client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    stale = sender(client, clock=lambda: time.time() - 600)
    with pytest.raises(PermanentDeliveryError) as caught:
        await stale.send_webhook(hook(f"{receiver.url}/hooks/crm"))
    assert caught.value.code == 401
    assert receiver.accepted == []


async def test_wrong_secret_is_refused(
    client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    with pytest.raises(PermanentDeliveryError, match="HTTP 401"):
        await sender(client, signing_secret="another-secret-of-length").send_webhook(
            hook(f"{receiver.url}/hooks/crm")
        )


@pytest.mark.parametrize(
    ("status", "maybe_delivered"), [(429, False), (408, False), (503, False), (500, True)]
)
async def test_busy_or_broken_receivers_are_retryable(
    client: httpx.AsyncClient, receiver: WebhookReceiver, status: int, maybe_delivered: bool
) -> None:
    receiver.answer_next(status, {"error": "later"}, headers={"Retry-After": "12"})
    with pytest.raises(RetryableDeliveryError) as caught:
        await sender(client).send_webhook(hook(f"{receiver.url}/hooks/crm"))
    assert caught.value.code == status
    assert caught.value.retry_after == 12.0
    assert caught.value.maybe_delivered is maybe_delivered


@pytest.mark.parametrize("status", [400, 404, 410, 422])
async def test_other_client_errors_are_permanent(
    client: httpx.AsyncClient, receiver: WebhookReceiver, status: int
) -> None:
    receiver.answer_next(status, {"error": "no"})
    with pytest.raises(PermanentDeliveryError) as caught:
        await sender(client).send_webhook(hook(f"{receiver.url}/hooks/crm"))
    assert caught.value.code == status


async def test_redirects_are_not_followed(
    client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    receiver.answer_next(302, headers={"Location": f"{receiver.url}/elsewhere"})
    with pytest.raises(PermanentDeliveryError, match="redirects are not followed"):
        await sender(client).send_webhook(hook(f"{receiver.url}/hooks/crm"))
    assert len(receiver.requests) == 1


async def test_no_answer_within_the_timeout_may_have_been_delivered(
    client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    receiver.hang_next()
    started = time.monotonic()
    with pytest.raises(RetryableDeliveryError) as caught:
        await sender(client, timeout=0.3).send_webhook(hook(f"{receiver.url}/hooks/crm"))
    assert time.monotonic() - started < 2.0
    assert caught.value.maybe_delivered is True
    assert "ReadTimeout" in str(caught.value)


async def test_connection_refused_was_not_delivered(client: httpx.AsyncClient) -> None:
    with pytest.raises(RetryableDeliveryError) as caught:
        await sender(client).send_webhook(hook(f"http://127.0.0.1:{unused_port()}/hooks"))
    assert caught.value.maybe_delivered is False
    assert "ConnectError" in str(caught.value)


@pytest.mark.parametrize(
    ("headers", "complaint"),
    [
        ({"Idempotency-Key": "mine"}, "is set by the sender"),
        ({"journeyman-signature": "v1=forged"}, "is set by the sender"),
        ({"Host": "elsewhere.example"}, "is set by the sender"),
        ({"Bad Name": "x"}, "invalid header name"),
        ({"X-Token": "secret-value\r\nX-Injected: 1"}, "no control characters"),
        ({"X-Name": "café secret-value"}, "printable ASCII"),
    ],
)
async def test_headers_the_sender_owns_or_cannot_send_are_refused(
    client: httpx.AsyncClient, receiver: WebhookReceiver, headers: dict[str, str], complaint: str
) -> None:
    with pytest.raises(PermanentDeliveryError, match=complaint) as caught:
        await sender(client).send_webhook(hook(f"{receiver.url}/hooks", headers=headers))
    assert "secret-value" not in str(caught.value)
    assert receiver.requests == []


async def test_https_receiver_with_an_untrusted_certificate_is_permanent(
    certificate: Certificate,
) -> None:
    server = WebhookReceiver(secret=SECRET)
    server.tls_files = (str(certificate.cert), str(certificate.key))
    async with server, httpx.AsyncClient(verify=certificate.client_context()) as trusting:
        await sender(trusting).send_webhook(hook(f"{server.url}/hooks/crm"))
        async with shared_client() as default_trust:
            with pytest.raises(PermanentDeliveryError, match="TLS certificate refused"):
                await sender(default_trust).send_webhook(hook(f"{server.url}/hooks/crm"))
    assert len(server.accepted) == 1


@pytest.mark.parametrize(
    "url", ["http://", "http://:8080/hooks", "https://[::1/hooks", "http://127.0.0.1:99999/x"]
)
async def test_a_url_that_cannot_be_requested_is_permanent(
    client: httpx.AsyncClient, url: str
) -> None:
    with pytest.raises(PermanentDeliveryError, match="the webhook URL"):
        await sender(client).send_webhook(hook(url))


async def test_no_secret_in_errors_reprs_or_logs(
    client: httpx.AsyncClient, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url_secret = "T0KEN-in-path-55aa"
    url = f"{receiver.url}/hooks/{url_secret}?token={url_secret}"
    webhook = sender(client)
    texts = [repr(webhook)]
    for status in (401, 500, 429):
        receiver.answer_next(status, {"echo": f"Bearer {CRM_KEY}"})
        with pytest.raises((PermanentDeliveryError, RetryableDeliveryError)) as caught:
            await webhook.send_webhook(hook(url))
        texts.append(str(caught.value))
    receiver.hang_next()
    with pytest.raises(RetryableDeliveryError) as timed_out:
        await sender(client, timeout=0.3).send_webhook(hook(url))
    texts.append(str(timed_out.value))
    await webhook.send_webhook(hook(url))
    assert "HTTP Request: POST" in caplog.text  # the client's own logging was captured
    for text in texts:
        assert url_secret not in text
        assert f"{receiver.url}" in text or text == repr(webhook)
    for text in [*texts, caplog.text]:
        assert SECRET not in text
        assert CRM_KEY not in text


def test_sender_refuses_a_short_secret_or_a_bad_timeout(client: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="at least 16"):
        WebhookSender(client, signing_secret="short")
    with pytest.raises(ValueError, match="positive"):
        WebhookSender(client, signing_secret=SECRET, timeout=0)


# --- the receivers' check ----------------------------------------------------------------------

NOW = 1_760_000_000


def test_signature_round_trip() -> None:
    header = sign(SECRET, NOW, BODY)
    assert header == "v1=" + hex_hmac_sha256(SECRET, f"{NOW}.{BODY}".encode())
    assert verify_signature(SECRET, str(NOW), BODY, header, now=NOW)
    assert verify_signature(SECRET, str(NOW), BODY.encode(), header, now=NOW + 299)
    assert verify_signature(SECRET, str(NOW), BODY, header, now=NOW - 299)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "header", "now"),
    [
        ("wrong-secret-0123456789", str(NOW), BODY, sign(SECRET, NOW, BODY), NOW),
        (SECRET, str(NOW), BODY + " ", sign(SECRET, NOW, BODY), NOW),
        (SECRET, str(NOW + 1), BODY, sign(SECRET, NOW, BODY), NOW),
        (SECRET, str(NOW), BODY, sign(SECRET, NOW, BODY), NOW + 301),
        (SECRET, str(NOW), BODY, sign(SECRET, NOW, BODY), NOW - 301),
        (SECRET, None, BODY, sign(SECRET, NOW, BODY), NOW),
        (SECRET, str(NOW), BODY, None, NOW),
        (SECRET, "", BODY, sign(SECRET, NOW, BODY), NOW),
        (SECRET, "17600e5", BODY, sign(SECRET, NOW, BODY), NOW),
        (SECRET, "-5", BODY, sign(SECRET, NOW, BODY), NOW),
        (SECRET, str(NOW), BODY, sign(SECRET, NOW, BODY).replace("v1=", "v0="), NOW),
        (SECRET, str(NOW), BODY, "v1=", NOW),
        (SECRET, str(NOW), BODY, sign(SECRET, NOW, BODY)[:-1] + "é", NOW),
    ],
)
def test_signature_check_refuses(
    secret: str, timestamp: str | None, body: str, header: str | None, now: int
) -> None:
    assert not verify_signature(secret, timestamp, body, header, now=now)


def test_any_listed_signature_is_enough() -> None:
    header = f"v1={'0' * 64}, {sign(SECRET, NOW, BODY)}"
    assert verify_signature(SECRET, str(NOW), BODY, header, now=NOW)


def test_tolerance_is_adjustable() -> None:
    header = sign(SECRET, NOW, BODY)
    assert not verify_signature(SECRET, str(NOW), BODY, header, now=NOW + 61, tolerance=60)
    assert verify_signature(SECRET, str(NOW), BODY, header, now=NOW + 59, tolerance=60)
