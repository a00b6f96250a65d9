"""The Twilio SMS provider against a local twin of Twilio's Messages API, and Twilio's
status-callback signature and states."""

from __future__ import annotations

import base64
import logging
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from journeyman.channels import (
    DeliveryError,
    PermanentDeliveryError,
    RecipientUnsubscribed,
    RetryableDeliveryError,
    SmsMessage,
    TwilioSms,
    idempotency_key_for,
    parse_status_callback,
    verify_status_callback,
)
from journeyman.channels.http import shared_client
from journeyman.channels.twilio import compute_signature, delivery_state

from .messaging_servers import StatusCallbackReceiver, TwilioServer, unused_port

ACCOUNT_SID = "AC" + "7f3c" * 8
AUTH_TOKEN = "twilio-auth-token-5e1d0c9b8a7f"
FROM = "+15005550006"

# Twilio's published request-validation example (docs and api-snippets, "signature_validation").
EXAMPLE_TOKEN = "12345"
EXAMPLE_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
EXAMPLE_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675310",
    "Digits": "1234",
    "From": "+14158675310",
    "To": "+18005551212",
}
EXAMPLE_SIGNATURE = "GvWf1cFY/Q7PnoempGyD5oXAezc="


class Certificate(Protocol):
    """The ``certificate`` fixture from conftest.py."""

    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext: ...


def sms(**overrides: Any) -> SmsMessage:
    fields: dict[str, Any] = {
        "to_number": "+886912345678",
        "body": "Your coupon SPRING expires tomorrow.",
        "idempotency_key": idempotency_key_for("journey-1/customer-7/coupon-reminder/0"),
    }
    fields.update(overrides)
    return SmsMessage(**fields)


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioServer]:
    async with TwilioServer(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with shared_client() as running:
        yield running


def provider(client: httpx.AsyncClient, server: TwilioServer, **options: Any) -> TwilioSms:
    options.setdefault("auth_token", AUTH_TOKEN)
    return TwilioSms(
        client, account_sid=ACCOUNT_SID, from_number=FROM, base_url=server.url, **options
    )


async def test_sends_the_documented_form_with_basic_auth_and_idempotency_token(
    client: httpx.AsyncClient, twilio: TwilioServer
) -> None:
    message = sms(status_callback="https://journeys.example.com/twilio/status")
    receipt = await provider(client, twilio).send_sms(message)

    [request] = twilio.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    credentials = base64.b64decode(request.headers["authorization"].removeprefix("Basic "))
    assert credentials.decode() == f"{ACCOUNT_SID}:{AUTH_TOKEN}"
    assert request.headers["i-twilio-idempotency-token"] == message.idempotency_key
    assert sorted(request.form()) == [
        ("Body", "Your coupon SPRING expires tomorrow."),
        ("From", FROM),
        ("StatusCallback", "https://journeys.example.com/twilio/status"),
        ("To", "+886912345678"),
    ]
    [created] = twilio.created
    assert receipt.provider == "twilio"
    assert receipt.provider_message_id == created["sid"]
    assert receipt.provider_message_id.startswith("SM")
    assert receipt.detail == "queued"


async def test_no_status_callback_field_without_a_callback(
    client: httpx.AsyncClient, twilio: TwilioServer
) -> None:
    await provider(client, twilio).send_sms(sms())
    [request] = twilio.requests
    assert {name for name, _ in request.form()} == {"To", "From", "Body"}


async def test_body_with_reserved_characters_arrives_intact(
    client: httpx.AsyncClient, twilio: TwilioServer
) -> None:
    body = "您好 Ada: 50% off & free shipping = today + tomorrow"
    await provider(client, twilio).send_sms(sms(body=body))
    assert twilio.created[0]["Body"] == body


async def test_the_same_send_carries_the_same_token_on_retry(
    client: httpx.AsyncClient, twilio: TwilioServer
) -> None:
    twilio.answer_next(503, {"code": 20503, "message": "Service Unavailable", "status": 503})
    message = sms()
    sender = provider(client, twilio)
    with pytest.raises(RetryableDeliveryError):
        await sender.send_sms(message)
    await sender.send_sms(message)
    tokens = [r.headers["i-twilio-idempotency-token"] for r in twilio.requests]
    assert tokens == [message.idempotency_key] * 2


async def test_unsubscribed_recipient_is_permanent_and_recognisable(
    client: httpx.AsyncClient, twilio: TwilioServer
) -> None:
    twilio.unsubscribed.add("+886912345678")
    with pytest.raises(RecipientUnsubscribed) as caught:
        await provider(client, twilio).send_sms(sms())
    assert caught.value.code == 21610
    assert "unsubscribed recipient" in str(caught.value)
    assert twilio.created == []


async def test_landline_is_permanent(client: httpx.AsyncClient, twilio: TwilioServer) -> None:
    twilio.landlines.add("+886223456789")
    with pytest.raises(PermanentDeliveryError) as caught:
        await provider(client, twilio).send_sms(sms(to_number="+886223456789"))
    assert caught.value.code == 21614
    assert not isinstance(caught.value, RecipientUnsubscribed)


async def test_invalid_number_is_permanent(client: httpx.AsyncClient, twilio: TwilioServer) -> None:
    # Well-formed E.164 that Twilio still refuses (no such numbering plan).
    twilio.answer_next(
        400,
        {
            "code": 21211,
            "message": "The 'To' number +999123456789 is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211",
            "status": 400,
        },
    )
    with pytest.raises(PermanentDeliveryError) as caught:
        await provider(client, twilio).send_sms(sms(to_number="+999123456789"))
    assert caught.value.code == 21211
    assert "HTTP 400, error 21211: The 'To' number" in str(caught.value)


async def test_wrong_credentials_are_permanent(
    client: httpx.AsyncClient, twilio: TwilioServer
) -> None:
    with pytest.raises(PermanentDeliveryError) as caught:
        await provider(client, twilio, auth_token="not-the-token").send_sms(sms())
    assert caught.value.code == 20003
    assert "HTTP 401" in str(caught.value)


async def test_rate_limit_is_retryable_with_retry_after(
    client: httpx.AsyncClient, twilio: TwilioServer
) -> None:
    twilio.answer_next(
        429,
        {"code": 20429, "message": "Too Many Requests", "status": 429},
        headers={"Retry-After": "7"},
    )
    with pytest.raises(RetryableDeliveryError) as caught:
        await provider(client, twilio).send_sms(sms())
    assert caught.value.code == 20429
    assert caught.value.retry_after == 7.0
    assert caught.value.maybe_delivered is False


@pytest.mark.parametrize(("status", "maybe_delivered"), [(503, False), (500, True), (502, True)])
async def test_server_errors_are_retryable(
    client: httpx.AsyncClient, twilio: TwilioServer, status: int, maybe_delivered: bool
) -> None:
    twilio.answer_next(status, {"code": 20500, "message": "Internal Server Error"})
    with pytest.raises(RetryableDeliveryError) as caught:
        await provider(client, twilio).send_sms(sms())
    assert caught.value.maybe_delivered is maybe_delivered
    assert caught.value.retry_after is None


async def test_success_without_a_sid_may_have_been_delivered(
    client: httpx.AsyncClient, twilio: TwilioServer
) -> None:
    twilio.answer_next(201, {"status": "queued"})
    with pytest.raises(RetryableDeliveryError) as caught:
        await provider(client, twilio).send_sms(sms())
    assert caught.value.maybe_delivered is True


async def test_redirect_is_not_followed(client: httpx.AsyncClient, twilio: TwilioServer) -> None:
    twilio.answer_next(301, headers={"Location": "https://elsewhere.example/"})
    with pytest.raises(PermanentDeliveryError, match="redirects are not followed"):
        await provider(client, twilio).send_sms(sms())


async def test_https_with_a_trusted_certificate_and_refused_certificate(
    certificate: Certificate,
) -> None:
    server = TwilioServer(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    server.tls_files = (str(certificate.cert), str(certificate.key))
    async with server, httpx.AsyncClient(verify=certificate.client_context()) as trusting:
        assert server.url.startswith("https://")
        receipt = await provider(trusting, server).send_sms(sms())
        assert receipt.provider_message_id == server.created[0]["sid"]
        async with shared_client() as default_trust:
            with pytest.raises(PermanentDeliveryError, match="TLS certificate") as caught:
                await provider(default_trust, server).send_sms(sms())
    assert AUTH_TOKEN not in str(caught.value)
    assert len(server.created) == 1


def test_plain_http_is_refused_except_to_loopback(client: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="https://HOST"):
        TwilioSms(
            client,
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            from_number=FROM,
            base_url="http://api.twilio.com",
        )


async def test_no_answer_within_the_timeout_may_have_been_delivered(twilio: TwilioServer) -> None:
    twilio.hang_next()
    async with shared_client(timeout=httpx.Timeout(0.3, connect=2.0)) as client:
        started = time.monotonic()
        with pytest.raises(RetryableDeliveryError) as caught:
            await provider(client, twilio).send_sms(sms())
    assert time.monotonic() - started < 2.0
    assert caught.value.maybe_delivered is True
    assert "ReadTimeout" in str(caught.value)


async def test_connection_refused_was_not_delivered(client: httpx.AsyncClient) -> None:
    sender = TwilioSms(
        client,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=FROM,
        base_url=f"http://127.0.0.1:{unused_port()}",
    )
    with pytest.raises(RetryableDeliveryError) as caught:
        await sender.send_sms(sms())
    assert caught.value.maybe_delivered is False
    assert "ConnectError" in str(caught.value)


async def test_no_secret_in_errors_reprs_or_logs(
    client: httpx.AsyncClient, twilio: TwilioServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    sender = provider(client, twilio)
    texts.append(repr(sender))
    for status in (400, 401, 429, 500):
        # A service that repeats the credential in its error text gets it redacted.
        twilio.answer_next(status, {"code": 20000 + status, "message": f"no {AUTH_TOKEN}"})
        with pytest.raises(DeliveryError) as caught:
            await sender.send_sms(sms())
        texts.append(str(caught.value))
        assert "no [redacted]" in str(caught.value)
    with pytest.raises(PermanentDeliveryError) as refused:
        await provider(client, twilio, auth_token="wrong-token-0a1b2c3d").send_sms(sms())
    texts.append(str(refused.value))
    await sender.send_sms(sms())
    basic = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert "HTTP Request: POST" in caplog.text  # the client's own logging was captured
    for text in [*texts, caplog.text]:
        assert AUTH_TOKEN not in text
        assert "wrong-token-0a1b2c3d" not in text
        assert basic not in text


def test_constructor_refuses_missing_settings(client: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="auth_token"):
        TwilioSms(client, account_sid=ACCOUNT_SID, auth_token="", from_number=FROM)
    with pytest.raises(ValueError, match="account_sid"):
        TwilioSms(client, account_sid="", auth_token=AUTH_TOKEN, from_number=FROM)
    with pytest.raises(ValueError, match="from_number"):
        TwilioSms(client, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number="")


# --- status callbacks ------------------------------------------------------------------------


def test_signature_matches_twilios_published_example() -> None:
    assert compute_signature(EXAMPLE_URL, EXAMPLE_PARAMS, EXAMPLE_TOKEN) == EXAMPLE_SIGNATURE
    assert verify_status_callback(EXAMPLE_URL, EXAMPLE_PARAMS, EXAMPLE_SIGNATURE, EXAMPLE_TOKEN)


def test_signature_tolerates_an_explicit_default_port() -> None:
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert verify_status_callback(with_port, EXAMPLE_PARAMS, EXAMPLE_SIGNATURE, EXAMPLE_TOKEN)


@pytest.mark.parametrize(
    ("url", "params", "signature", "token"),
    [
        (EXAMPLE_URL, {**EXAMPLE_PARAMS, "Digits": "1235"}, EXAMPLE_SIGNATURE, EXAMPLE_TOKEN),
        (EXAMPLE_URL, EXAMPLE_PARAMS, EXAMPLE_SIGNATURE, "54321"),
        (EXAMPLE_URL.replace("foo=1", "foo=2"), EXAMPLE_PARAMS, EXAMPLE_SIGNATURE, EXAMPLE_TOKEN),
        (EXAMPLE_URL, EXAMPLE_PARAMS, "", EXAMPLE_TOKEN),
        (EXAMPLE_URL, EXAMPLE_PARAMS, None, EXAMPLE_TOKEN),
        (EXAMPLE_URL, EXAMPLE_PARAMS, "GvWf1cFY/Q7PnoempGyD5oXAezd=", EXAMPLE_TOKEN),
        (EXAMPLE_URL, EXAMPLE_PARAMS, "ünïcode", EXAMPLE_TOKEN),
    ],
)
def test_signature_refuses_any_change(
    url: str, params: dict[str, str], signature: str | None, token: str
) -> None:
    assert not verify_status_callback(url, params, signature, token)


def test_repeated_parameters_are_signed_in_sorted_order() -> None:
    pairs = [("MediaUrl", "b"), ("Body", "hi"), ("MediaUrl", "a")]
    signature = compute_signature("https://x.example/cb", pairs, "tok")
    reordered = [("MediaUrl", "a"), ("MediaUrl", "b"), ("Body", "hi")]
    assert verify_status_callback("https://x.example/cb", reordered, signature, "tok")


@pytest.mark.parametrize(
    ("twilio_status", "state"),
    [
        ("accepted", "queued"),
        ("queued", "queued"),
        ("sending", "queued"),
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("read", "delivered"),
        ("undelivered", "failed"),
        ("failed", "failed"),
    ],
)
def test_twilio_statuses_map_to_delivery_states(twilio_status: str, state: str) -> None:
    assert delivery_state(twilio_status) == state


def test_failed_status_carries_the_error_code() -> None:
    update = parse_status_callback(
        {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    )
    assert (update.state, update.reason, update.twilio_status) == ("failed", "30003", "undelivered")
    delivered = parse_status_callback(
        {"MessageSid": "SM1", "MessageStatus": "delivered", "ErrorCode": ""}
    )
    assert delivered.reason is None


def test_unknown_or_missing_status_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Twilio MessageStatus 'receiving'"):
        parse_status_callback({"MessageSid": "SM1", "MessageStatus": "receiving"})
    with pytest.raises(ValueError, match="MessageSid and MessageStatus"):
        parse_status_callback({"MessageStatus": "sent"})


async def test_status_callbacks_round_trip_through_a_real_endpoint(
    client: httpx.AsyncClient, twilio: TwilioServer
) -> None:
    async with StatusCallbackReceiver(auth_token=AUTH_TOKEN) as receiver:
        receipt = await provider(client, twilio).send_sms(
            sms(status_callback=receiver.callback_url)
        )
        sid = receipt.provider_message_id
        assert (await twilio.report_status(sid, "sent")).status_code == 204
        assert (await twilio.report_status(sid, "delivered")).status_code == 204
        failed = await twilio.report_status(sid, "undelivered", error_code="30005")
        assert failed.status_code == 204
        forged = await twilio.report_status(sid, "failed", tamper=True)
        assert forged.status_code == 403
        inbound = await twilio.report_status(sid, "receiving")
        assert inbound.status_code == 400
    assert [(u.message_sid, u.state, u.reason) for u in receiver.updates] == [
        (sid, "sent", None),
        (sid, "delivered", None),
        (sid, "failed", "30005"),
    ]
