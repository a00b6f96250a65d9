"""The SendGrid provider against a local server that checks the documented Mail Send shape."""

from __future__ import annotations

import copy
import logging
import ssl
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol

import httpx
import pytest

from journeyman.channels import (
    DeliveryError,
    EmailMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
    SendGridProvider,
)
from journeyman.channels.http import shared_client
from journeyman.channels.sendgrid import sendgrid_payload

from .provider_servers import Delay, Drop, Hang, Reply, SendGridTwin, unused_port

MessageFactory = Callable[..., EmailMessage]
API_KEY = "SG.journeyman-test.k3y-that-must-never-leak-0123456789"
SCOPELESS_KEY = "SG.journeyman-test.read-only-key-without-mail-send"
UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://shop.example/u/3f2a>, <mailto:unsub@shop.example?subject=3f2a>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


class Certificate(Protocol):
    """The ``certificate`` fixture from conftest.py."""

    def server_context(self) -> ssl.SSLContext: ...

    def client_context(self) -> ssl.SSLContext: ...


@pytest.fixture
def twin() -> Iterator[SendGridTwin]:
    with SendGridTwin(
        api_key=API_KEY, forbidden_keys=frozenset({SCOPELESS_KEY}), max_body_bytes=20_000
    ) as running:
        yield running
    assert running.server_errors == []


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with shared_client(timeout=httpx.Timeout(3.0, connect=1.0)) as shared:
        yield shared


def provider_for(
    twin: SendGridTwin, client: httpx.AsyncClient, key: str = API_KEY
) -> SendGridProvider:
    return SendGridProvider(client, api_key=key, base_url=twin.base_url)


def shown_texts(error: BaseException) -> str:
    """Everything a log line or a ledger reason could show of ``error``, cause chain included."""
    return "\n".join([str(error), repr(error), *traceback.format_exception(error)])


async def test_sends_the_documented_mail_send_body(
    twin: SendGridTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    message = make_message(headers={**UNSUBSCRIBE, "X-Journey": "onboarding"})
    receipt = await provider_for(twin, client).send(message)

    assert receipt.provider == "sendgrid"
    assert receipt.provider_message_id == twin.message_ids[0]
    assert receipt.detail is None
    [request] = twin.received
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert twin.accepted == [
        {
            "personalizations": [{"to": [{"email": "ada@example.com", "name": "Ada Lovelace"}]}],
            "from": {"email": "journeys@example.org", "name": "Journeyman"},
            "subject": "Welcome aboard",
            "content": [
                {"type": "text/plain", "value": "Hello Ada,\nwelcome.\n"},
                {"type": "text/html", "value": "<p>Hello <b>Ada</b>, welcome.</p>"},
            ],
            "headers": {
                "Message-ID": message.message_id,
                **UNSUBSCRIBE,
                "X-Journey": "onboarding",
            },
            "custom_args": {"journeyman_msg_id": message.message_id},
        }
    ]


@pytest.mark.parametrize(
    ("text", "html", "types"),
    [
        ("Hi\n", None, ["text/plain"]),
        ("", "<p>Hi</p>", ["text/html"]),
        ("Hi\n", "<p>Hi</p>", ["text/plain", "text/html"]),
    ],
)
async def test_content_parts_follow_the_message(
    twin: SendGridTwin,
    client: httpx.AsyncClient,
    make_message: MessageFactory,
    text: str,
    html: str | None,
    types: list[str],
) -> None:
    await provider_for(twin, client).send(make_message(text=text, html=html, to_name=None))
    [body] = twin.accepted
    assert [part["type"] for part in body["content"]] == types
    assert body["personalizations"][0]["to"] == [{"email": "ada@example.com"}]


async def test_reply_to_goes_in_sendgrids_field_not_a_header(
    twin: SendGridTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    message = make_message(headers={"Reply-To": "Support <help@example.org>"})
    await provider_for(twin, client).send(message)
    [body] = twin.accepted
    assert body["reply_to"] == {"email": "help@example.org", "name": "Support"}
    assert "Reply-To" not in body["headers"]


async def test_a_message_without_any_body_is_refused_before_sending(
    twin: SendGridTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    with pytest.raises(PermanentDeliveryError, match="neither text nor HTML"):
        await provider_for(twin, client).send(make_message(text="", html=None))
    assert twin.received == []


async def test_a_refused_field_is_permanent_with_sendgrids_explanation(
    twin: SendGridTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    # EmailMessage allows DKIM-Signature; SendGrid reserves it.
    message = make_message(headers={"DKIM-Signature": "v=1; a=rsa-sha256"})
    with pytest.raises(PermanentDeliveryError) as caught:
        await provider_for(twin, client).send(message)
    assert caught.value.code == 400
    assert "headers: The header DKIM-Signature is reserved" in str(caught.value)
    assert twin.accepted == []


async def test_wrong_api_key_is_permanent_and_never_shown(
    twin: SendGridTwin,
    client: httpx.AsyncClient,
    make_message: MessageFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "SG.wrong-key-that-must-not-appear-anywhere"
    provider = provider_for(twin, client, key=wrong)
    with pytest.raises(PermanentDeliveryError, match="authorization grant is invalid") as caught:
        await provider.send(make_message())
    assert caught.value.code == 401
    for text in (shown_texts(caught.value), repr(provider), caplog.text):
        assert wrong not in text


async def test_key_without_the_mail_send_scope_is_permanent(
    twin: SendGridTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    with pytest.raises(PermanentDeliveryError, match="access forbidden") as caught:
        await provider_for(twin, client, key=SCOPELESS_KEY).send(make_message())
    assert caught.value.code == 403


async def test_oversized_message_is_permanent(
    twin: SendGridTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    with pytest.raises(PermanentDeliveryError, match="payload too large") as caught:
        await provider_for(twin, client).send(make_message(html="<p>" + "x" * 25_000 + "</p>"))
    assert caught.value.code == 413


async def test_rate_limit_is_retryable_after_the_time_sendgrid_names(
    twin: SendGridTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    too_many = {"errors": [{"field": None, "message": "too many requests"}]}
    twin.then(Reply(429, too_many, {"Retry-After": "7"}))
    provider = provider_for(twin, client)
    with pytest.raises(RetryableDeliveryError, match="too many requests") as caught:
        await provider.send(make_message())
    assert (caught.value.code, caught.value.retry_after) == (429, 7.0)
    assert caught.value.maybe_delivered is False
    assert twin.accepted == []
    # The retry goes through once SendGrid takes requests again.
    await provider.send(make_message())
    assert len(twin.accepted) == 1


async def test_rate_limit_reset_header_gives_the_wait_when_retry_after_is_missing(
    twin: SendGridTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    reset = int(time.time()) + 30
    too_many = {"errors": [{"field": None, "message": "too many requests"}]}
    twin.then(Reply(429, too_many, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}))
    with pytest.raises(RetryableDeliveryError) as caught:
        await provider_for(twin, client).send(make_message())
    assert caught.value.retry_after is not None
    assert 25 <= caught.value.retry_after <= 30


@pytest.mark.parametrize(("status", "maybe_delivered"), [(500, True), (502, True), (503, False)])
async def test_server_errors_are_retryable(
    twin: SendGridTwin,
    client: httpx.AsyncClient,
    make_message: MessageFactory,
    status: int,
    maybe_delivered: bool,
) -> None:
    twin.then(Reply(status, {"errors": [{"field": None, "message": "internal error"}]}))
    with pytest.raises(RetryableDeliveryError, match=f"HTTP {status}: internal error") as caught:
        await provider_for(twin, client).send(make_message())
    assert caught.value.code == status
    assert caught.value.maybe_delivered is maybe_delivered


async def test_html_error_page_is_cut_short(
    twin: SendGridTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    twin.then(Reply(502, b"<html><body>" + b"Bad gateway " * 200 + b"</body></html>"))
    with pytest.raises(RetryableDeliveryError) as caught:
        await provider_for(twin, client).send(make_message())
    assert len(str(caught.value)) < 400


async def test_sandbox_mode_answer_is_not_taken_for_delivery(
    twin: SendGridTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    twin.then(Reply(200, b""))
    with pytest.raises(PermanentDeliveryError, match="not queued") as caught:
        await provider_for(twin, client).send(make_message())
    assert caught.value.code == 200


async def test_redirect_is_permanent(
    twin: SendGridTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    twin.then(Reply(301, b"", {"Location": "https://elsewhere.example/v3/mail/send"}))
    with pytest.raises(PermanentDeliveryError, match="check the base URL"):
        await provider_for(twin, client).send(make_message())


async def test_accepted_without_x_message_id_falls_back_to_the_message_id(
    twin: SendGridTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    message = make_message()
    twin.then(Reply(202, b""))
    receipt = await provider_for(twin, client).send(message)
    assert receipt.provider_message_id == message.message_id
    assert receipt.detail == "SendGrid sent no X-Message-Id"


async def test_slow_answer_within_the_timeout_is_a_success(
    twin: SendGridTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    twin.then(Delay(0.3))
    receipt = await provider_for(twin, client).send(make_message())
    assert receipt.provider_message_id == twin.message_ids[0]


async def test_hang_past_the_timeout_may_have_delivered(
    twin: SendGridTwin, make_message: MessageFactory
) -> None:
    twin.then(Hang())
    async with shared_client(timeout=httpx.Timeout(0.5, connect=1.0)) as impatient:
        with pytest.raises(RetryableDeliveryError, match="ReadTimeout") as caught:
            await provider_for(twin, impatient).send(make_message())
    assert caught.value.maybe_delivered is True
    # The twin did queue it: a retry could send it twice, which is what the flag warns of.
    assert len(twin.accepted) == 1


async def test_connection_dropped_after_the_request_may_have_delivered(
    twin: SendGridTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    twin.then(Drop())
    with pytest.raises(RetryableDeliveryError) as caught:
        await provider_for(twin, client).send(make_message())
    assert caught.value.maybe_delivered is True
    assert caught.value.code is None


async def test_connection_refused_is_retryable_and_not_delivered(
    client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    provider = SendGridProvider(
        client, api_key=API_KEY, base_url=f"http://127.0.0.1:{unused_port()}"
    )
    with pytest.raises(RetryableDeliveryError, match="ConnectError") as caught:
        await provider.send(make_message())
    assert caught.value.maybe_delivered is False
    assert caught.value.code is None


async def test_https_with_a_trusted_certificate(
    certificate: Certificate, make_message: MessageFactory
) -> None:
    with SendGridTwin(api_key=API_KEY, tls_context=certificate.server_context()) as secure:
        assert secure.base_url.startswith("https://")
        async with httpx.AsyncClient(verify=certificate.client_context()) as trusting:
            await provider_for(secure, trusting).send(make_message())
        assert len(secure.accepted) == 1


async def test_untrusted_certificate_is_permanent_and_nothing_is_sent(
    certificate: Certificate, make_message: MessageFactory
) -> None:
    with SendGridTwin(api_key=API_KEY, tls_context=certificate.server_context()) as secure:
        async with shared_client() as default_trust:
            with pytest.raises(PermanentDeliveryError, match="certificate") as caught:
                await provider_for(secure, default_trust).send(make_message())
        assert secure.received == []
    assert API_KEY not in shown_texts(caught.value)


@pytest.mark.parametrize(
    "outcome",
    [
        Reply(400, {"errors": [{"field": "from", "message": "bad sender"}]}),
        Reply(429, {"errors": [{"field": None, "message": "too many requests"}]}),
        Reply(500, b"oops"),
        Hang(),
        Drop(),
    ],
    ids=["400", "429", "500", "hang", "drop"],
)
async def test_the_api_key_is_in_no_log_and_no_error(
    twin: SendGridTwin,
    make_message: MessageFactory,
    caplog: pytest.LogCaptureFixture,
    outcome: Reply | Hang | Drop,
) -> None:
    caplog.set_level(logging.DEBUG)
    twin.then(outcome)
    async with shared_client(timeout=httpx.Timeout(0.5, connect=1.0)) as client:
        provider = provider_for(twin, client)
        with pytest.raises(DeliveryError) as caught:
            await provider.send(make_message())
        await provider.send(make_message())
    assert caplog.records, "httpx logs each request; the check below must see them"
    for text in (shown_texts(caught.value), caplog.text, repr(provider), str(vars(provider))):
        assert API_KEY not in text


async def test_provider_text_that_echoes_the_key_is_redacted(
    twin: SendGridTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    twin.then(Reply(400, {"errors": [{"field": None, "message": f"bad key {API_KEY}"}]}))
    with pytest.raises(PermanentDeliveryError, match=r"bad key \[redacted\]") as caught:
        await provider_for(twin, client).send(make_message())
    assert API_KEY not in shown_texts(caught.value)


def test_configuration_is_checked_up_front() -> None:
    client = httpx.AsyncClient()
    for key in ("", "SG.has space", "SG.key\r\nX-Evil: 1"):
        with pytest.raises(ValueError, match="api_key") as caught:
            SendGridProvider(client, api_key=key)
        if key:
            assert key not in str(caught.value)
    for url in ("http://api.sendgrid.com", "ftp://api.sendgrid.com", "api.sendgrid.com"):
        with pytest.raises(ValueError, match="base_url"):
            SendGridProvider(client, api_key=API_KEY, base_url=url)
    eu = SendGridProvider(client, api_key=API_KEY, base_url="https://api.eu.sendgrid.com/")
    assert eu.base_url == "https://api.eu.sendgrid.com"
    assert API_KEY not in repr(eu)


# --- the twin itself: proof that it refuses what SendGrid refuses ---------------------------


def _drop_text_part(body: dict[str, Any]) -> None:
    body["content"] = [body["content"][1], body["content"][0]]


@pytest.mark.parametrize(
    ("break_body", "field"),
    [
        (lambda body: body.pop("personalizations"), "personalizations"),
        (lambda body: body["personalizations"][0].pop("to"), "personalizations.0.to"),
        (lambda body: body["personalizations"][0]["to"][0].update(email="nope"), "email"),
        (lambda body: body.pop("from"), "from"),
        (lambda body: body.update(subject=""), "subject"),
        (lambda body: body.pop("content"), "content"),
        (_drop_text_part, "content"),
        (lambda body: body["content"][0].update(value=""), "content.0.value"),
        (lambda body: body["headers"].update({"X-Count": 3}), "headers"),
        (lambda body: body["headers"].update({"Reply-To": "x@example.org"}), "headers"),
        (lambda body: body.update(custom_args="message-1"), "custom_args"),
        (lambda body: body["custom_args"].update(n=1), "custom_args"),
        (lambda body: body.update(custom_arg={"a": "b"}), "custom_arg"),
    ],
)
async def test_the_twin_refuses_bodies_that_break_the_documented_shape(
    twin: SendGridTwin,
    client: httpx.AsyncClient,
    make_message: MessageFactory,
    break_body: Callable[[dict[str, Any]], object],
    field: str,
) -> None:
    body = copy.deepcopy(sendgrid_payload(make_message()))
    break_body(body)
    response = await client.post(
        twin.base_url + "/v3/mail/send", json=body, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert response.status_code == 400
    assert any(field in (error["field"] or "") for error in response.json()["errors"])
    assert twin.accepted == []


async def test_the_twin_wants_the_key_as_a_bearer_token_and_json(
    twin: SendGridTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    url = twin.base_url + "/v3/mail/send"
    body = sendgrid_payload(make_message())
    assert (await client.post(url, json=body)).status_code == 401
    basic = {"Authorization": f"Basic {API_KEY}"}
    assert (await client.post(url, json=body, headers=basic)).status_code == 401
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    assert (await client.post(url, data={"x": "1"}, headers=bearer)).status_code == 415
    assert (
        await client.post(twin.base_url + "/v3/mail", json=body, headers=bearer)
    ).status_code == 404
    assert twin.accepted == []
