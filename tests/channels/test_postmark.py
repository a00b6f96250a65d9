"""The Postmark provider against a local server that checks Postmark's documented /email shape."""

from __future__ import annotations

import copy
import logging
import ssl
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol

import httpx
import pytest

from journeyman.channels import (
    DeliveryError,
    EmailMessage,
    InactiveRecipient,
    PermanentDeliveryError,
    PostmarkProvider,
    RetryableDeliveryError,
)
from journeyman.channels.http import shared_client
from journeyman.channels.postmark import postmark_payload

from .provider_servers import (
    POSTMARK_INACTIVE_RECIPIENT,
    POSTMARK_INVALID_EMAIL_REQUEST,
    Delay,
    Drop,
    Hang,
    PostmarkTwin,
    Reply,
    unused_port,
)

MessageFactory = Callable[..., EmailMessage]
TOKEN = "0f6c1d2e-journeyman-test-server-token-never-shown"
GONE = "gone@example.com"
UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://shop.example/u/3f2a>, <mailto:unsub@shop.example?subject=3f2a>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


class Certificate(Protocol):
    """The ``certificate`` fixture from conftest.py."""

    def server_context(self) -> ssl.SSLContext: ...

    def client_context(self) -> ssl.SSLContext: ...


@pytest.fixture
def twin() -> Iterator[PostmarkTwin]:
    with PostmarkTwin(
        server_token=TOKEN, inactive=frozenset({GONE}), max_body_bytes=20_000
    ) as running:
        yield running
    assert running.server_errors == []


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with shared_client(timeout=httpx.Timeout(3.0, connect=1.0)) as shared:
        yield shared


def provider_for(
    twin: PostmarkTwin, client: httpx.AsyncClient, token: str = TOKEN, **options: Any
) -> PostmarkProvider:
    return PostmarkProvider(client, server_token=token, base_url=twin.base_url, **options)


def shown_texts(error: BaseException) -> str:
    """Everything a log line or a ledger reason could show of ``error``, cause chain included."""
    return "\n".join([str(error), repr(error), *traceback.format_exception(error)])


async def test_sends_the_documented_email_body(
    twin: PostmarkTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    message = make_message(headers={**UNSUBSCRIBE, "X-Journey": "onboarding"})
    receipt = await provider_for(twin, client).send(message)

    assert receipt.provider == "postmark"
    assert receipt.provider_message_id == twin.message_ids[0]
    assert receipt.detail is not None and receipt.detail.startswith("submitted at 20")
    [request] = twin.received
    assert request.headers["x-postmark-server-token"] == TOKEN
    assert request.headers["accept"] == "application/json"
    assert request.headers["content-type"] == "application/json"
    assert twin.accepted == [
        {
            "From": "Journeyman <journeys@example.org>",
            "To": "Ada Lovelace <ada@example.com>",
            "Subject": "Welcome aboard",
            "TextBody": "Hello Ada,\nwelcome.\n",
            "HtmlBody": "<p>Hello <b>Ada</b>, welcome.</p>",
            "Headers": [
                {"Name": "List-Unsubscribe", "Value": UNSUBSCRIBE["List-Unsubscribe"]},
                {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
                {"Name": "X-Journey", "Value": "onboarding"},
            ],
            "MessageStream": "outbound",
            "Metadata": {"journeyman_msg_id": message.message_id},
        }
    ]


async def test_text_only_message_has_no_html_body_and_no_headers(
    twin: PostmarkTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    await provider_for(twin, client).send(make_message(html=None, to_name=None))
    [body] = twin.accepted
    assert "HtmlBody" not in body and "Headers" not in body
    assert body["To"] == "ada@example.com"


async def test_names_with_punctuation_are_quoted_and_reply_to_has_its_field(
    twin: PostmarkTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    message = make_message(
        to_name="Lovelace, Ada",
        from_address='"Shop, Inc." <journeys@example.org>',
        headers={"Reply-To": "help@example.org"},
    )
    await provider_for(twin, client).send(message)
    [body] = twin.accepted
    assert body["To"] == '"Lovelace, Ada" <ada@example.com>'
    assert body["From"] == '"Shop, Inc." <journeys@example.org>'
    assert body["ReplyTo"] == "help@example.org"
    assert "Headers" not in body


async def test_sends_through_the_configured_message_stream(
    twin: PostmarkTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    await provider_for(twin, client, message_stream="broadcast").send(make_message())
    assert twin.accepted[0]["MessageStream"] == "broadcast"
    with pytest.raises(PermanentDeliveryError, match="ErrorCode 1235") as caught:
        await provider_for(twin, client, message_stream="newsletters").send(make_message())
    assert caught.value.code == 1235


async def test_a_long_message_id_is_cut_to_postmarks_metadata_limit(
    twin: PostmarkTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    long_id = "<" + "a" * 40 + "@" + "mail." * 12 + "example>"
    await provider_for(twin, client).send(make_message(message_id=long_id))
    assert twin.accepted[0]["Metadata"] == {"journeyman_msg_id": long_id[:80]}


async def test_inactive_recipient_is_permanent_and_says_so(
    twin: PostmarkTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    with pytest.raises(InactiveRecipient, match="marked as inactive") as caught:
        await provider_for(twin, client).send(make_message(to_address=GONE))
    assert caught.value.code == POSTMARK_INACTIVE_RECIPIENT == 406
    assert twin.accepted == []


async def test_invalid_email_request_is_permanent(
    twin: PostmarkTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    # EmailMessage's check is loose on purpose; Postmark wants a dotted domain.
    with pytest.raises(PermanentDeliveryError, match="Invalid 'To' address") as caught:
        await provider_for(twin, client).send(make_message(to_address="ada@localhost"))
    assert caught.value.code == POSTMARK_INVALID_EMAIL_REQUEST == 300
    assert not isinstance(caught.value, InactiveRecipient)


async def test_a_message_without_any_body_is_refused_before_sending(
    twin: PostmarkTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    with pytest.raises(PermanentDeliveryError, match="neither text nor HTML"):
        await provider_for(twin, client).send(make_message(text="", html=None))
    assert twin.received == []


async def test_wrong_token_is_permanent_and_never_shown(
    twin: PostmarkTwin,
    client: httpx.AsyncClient,
    make_message: MessageFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-token-that-must-not-appear-anywhere"
    provider = provider_for(twin, client, token=wrong)
    with pytest.raises(PermanentDeliveryError, match="HTTP 401, ErrorCode 10") as caught:
        await provider.send(make_message())
    assert caught.value.code == 10
    for text in (shown_texts(caught.value), repr(provider), caplog.text):
        assert wrong not in text


async def test_oversized_message_is_permanent(
    twin: PostmarkTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    with pytest.raises(PermanentDeliveryError, match="HTTP 413") as caught:
        await provider_for(twin, client).send(make_message(html="<p>" + "x" * 25_000 + "</p>"))
    assert caught.value.code == 413


async def test_rate_limit_is_retryable_after_the_time_postmark_names(
    twin: PostmarkTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    limited = {"ErrorCode": 429, "Message": "Rate limit exceeded"}
    twin.then(Reply(429, limited, {"Retry-After": "12"}))
    provider = provider_for(twin, client)
    with pytest.raises(RetryableDeliveryError, match="Rate limit exceeded") as caught:
        await provider.send(make_message())
    assert (caught.value.retry_after, caught.value.maybe_delivered) == (12.0, False)
    assert twin.accepted == []
    await provider.send(make_message())
    assert len(twin.accepted) == 1


@pytest.mark.parametrize(("status", "maybe_delivered"), [(500, True), (503, False)])
async def test_server_errors_are_retryable(
    twin: PostmarkTwin,
    client: httpx.AsyncClient,
    make_message: MessageFactory,
    status: int,
    maybe_delivered: bool,
) -> None:
    twin.then(Reply(status, b"Internal Server Error"))
    with pytest.raises(RetryableDeliveryError, match=f"HTTP {status}") as caught:
        await provider_for(twin, client).send(make_message())
    assert caught.value.code == status
    assert caught.value.maybe_delivered is maybe_delivered


async def test_ok_status_with_an_error_code_is_not_a_delivery(
    twin: PostmarkTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    twin.then(Reply(200, {"ErrorCode": 405, "Message": "Not allowed to send"}))
    with pytest.raises(PermanentDeliveryError, match="Not allowed to send") as caught:
        await provider_for(twin, client).send(make_message())
    assert caught.value.code == 405


async def test_ok_without_a_message_id_falls_back_to_the_message_id(
    twin: PostmarkTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    message = make_message()
    twin.then(Reply(200, {"ErrorCode": 0, "Message": "OK"}))
    receipt = await provider_for(twin, client).send(message)
    assert receipt.provider_message_id == message.message_id


async def test_slow_answer_within_the_timeout_is_a_success(
    twin: PostmarkTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    twin.then(Delay(0.3))
    receipt = await provider_for(twin, client).send(make_message())
    assert receipt.provider_message_id == twin.message_ids[0]


async def test_hang_past_the_timeout_may_have_delivered(
    twin: PostmarkTwin, make_message: MessageFactory
) -> None:
    twin.then(Hang())
    async with shared_client(timeout=httpx.Timeout(0.5, connect=1.0)) as impatient:
        with pytest.raises(RetryableDeliveryError, match="ReadTimeout") as caught:
            await provider_for(twin, impatient).send(make_message())
    assert caught.value.maybe_delivered is True
    assert len(twin.accepted) == 1


async def test_connection_dropped_after_the_request_may_have_delivered(
    twin: PostmarkTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    twin.then(Drop())
    with pytest.raises(RetryableDeliveryError) as caught:
        await provider_for(twin, client).send(make_message())
    assert caught.value.maybe_delivered is True


async def test_connection_refused_is_retryable_and_not_delivered(
    client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    provider = PostmarkProvider(
        client, server_token=TOKEN, base_url=f"http://127.0.0.1:{unused_port()}"
    )
    with pytest.raises(RetryableDeliveryError, match="ConnectError") as caught:
        await provider.send(make_message())
    assert caught.value.maybe_delivered is False
    assert caught.value.code is None


async def test_https_with_a_trusted_certificate(
    certificate: Certificate, make_message: MessageFactory
) -> None:
    with PostmarkTwin(server_token=TOKEN, tls_context=certificate.server_context()) as secure:
        async with httpx.AsyncClient(verify=certificate.client_context()) as trusting:
            await provider_for(secure, trusting).send(make_message())
        assert len(secure.accepted) == 1


async def test_untrusted_certificate_is_permanent_and_nothing_is_sent(
    certificate: Certificate, make_message: MessageFactory
) -> None:
    with PostmarkTwin(server_token=TOKEN, tls_context=certificate.server_context()) as secure:
        async with shared_client() as default_trust:
            with pytest.raises(PermanentDeliveryError, match="certificate"):
                await provider_for(secure, default_trust).send(make_message())
        assert secure.received == []


@pytest.mark.parametrize(
    "outcome",
    [
        Reply(422, {"ErrorCode": 300, "Message": "Invalid email request"}),
        Reply(429, {"ErrorCode": 429, "Message": "Rate limit exceeded"}),
        Reply(500, b"oops"),
        Hang(),
        Drop(),
    ],
    ids=["422", "429", "500", "hang", "drop"],
)
async def test_the_token_is_in_no_log_and_no_error(
    twin: PostmarkTwin,
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
        assert TOKEN not in text


async def test_provider_text_that_echoes_the_token_is_redacted(
    twin: PostmarkTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    twin.then(Reply(422, {"ErrorCode": 300, "Message": f"Token {TOKEN} cannot send"}))
    with pytest.raises(PermanentDeliveryError, match=r"Token \[redacted\] cannot send") as caught:
        await provider_for(twin, client).send(make_message())
    assert TOKEN not in shown_texts(caught.value)


def test_configuration_is_checked_up_front() -> None:
    client = httpx.AsyncClient()
    for token in ("", "has space", "token\r\nX-Evil: 1"):
        with pytest.raises(ValueError, match="server_token"):
            PostmarkProvider(client, server_token=token)
    with pytest.raises(ValueError, match="message_stream"):
        PostmarkProvider(client, server_token=TOKEN, message_stream=" ")
    for url in ("http://api.postmarkapp.com", "ftp://api.postmarkapp.com", "api.postmarkapp.com"):
        with pytest.raises(ValueError, match="base_url"):
            PostmarkProvider(client, server_token=TOKEN, base_url=url)
    provider = PostmarkProvider(client, server_token=TOKEN)
    assert provider.base_url == "https://api.postmarkapp.com"
    assert TOKEN not in repr(provider)


# --- the twin itself: proof that it refuses what Postmark refuses ---------------------------


@pytest.mark.parametrize(
    ("break_body", "error_code"),
    [
        (lambda body: body.pop("From"), 300),
        (lambda body: body.update(From="Journeyman"), 300),
        (lambda body: body.pop("To"), 300),
        (lambda body: body.update(To="ada at example.com"), 300),
        (lambda body: [body.pop("TextBody"), body.pop("HtmlBody")], 300),
        (lambda body: body.update(Headers={"X-Journey": "onboarding"}), 300),
        (lambda body: body.update(Headers=[{"Key": "X-Journey", "Value": "x"}]), 300),
        (lambda body: body.update(Metadata={"journeyman_msg_id": 7}), 300),
        (lambda body: body.update(Metadata={"a-very-long-metadata-name": "x"}), 300),
        (lambda body: body.update(TextBody=["Hello"]), 300),
        (lambda body: body.update(Textbody="Hello"), 403),
    ],
)
async def test_the_twin_refuses_bodies_that_break_the_documented_shape(
    twin: PostmarkTwin,
    client: httpx.AsyncClient,
    make_message: MessageFactory,
    break_body: Callable[[dict[str, Any]], object],
    error_code: int,
) -> None:
    body = copy.deepcopy(postmark_payload(make_message(), message_stream="outbound"))
    break_body(body)
    response = await client.post(
        twin.base_url + "/email",
        json=body,
        headers={"X-Postmark-Server-Token": TOKEN, "Accept": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["ErrorCode"] == error_code
    assert twin.accepted == []


async def test_the_twin_wants_the_token_header_and_json_both_ways(
    twin: PostmarkTwin, client: httpx.AsyncClient, make_message: MessageFactory
) -> None:
    url = twin.base_url + "/email"
    body = postmark_payload(make_message(), message_stream="outbound")
    json_accept = {"Accept": "application/json"}
    assert (await client.post(url, json=body, headers=json_accept)).status_code == 401
    token_only = {"X-Postmark-Server-Token": TOKEN}
    refused = await client.post(url, json=body, headers=token_only)
    assert (refused.status_code, refused.json()["ErrorCode"]) == (422, 409)
    both = {**token_only, **json_accept}
    assert (
        await client.post(url, content=b"{", headers={**both, "Content-Type": "application/json"})
    ).json()["ErrorCode"] == 402
    assert twin.accepted == []
