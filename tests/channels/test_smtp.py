"""The SMTP provider against a real SMTP server (the sink), including its failure modes."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from email.message import EmailMessage as MimeMessage
from typing import Any, Protocol

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from journeyman.channels import (
    EmailMessage,
    PermanentDeliveryError,
    RetryableDeliveryError,
    SmtpProvider,
    SmtpSink,
)

MessageFactory = Callable[..., EmailMessage]
PASSWORD = "correct-horse-battery-staple"


class Certificate(Protocol):
    """The ``certificate`` fixture from conftest.py."""

    def server_context(self) -> ssl.SSLContext: ...

    def client_context(self) -> ssl.SSLContext: ...


def provider_for(sink: SmtpSink, **options: Any) -> SmtpProvider:
    options.setdefault("timeout", 5.0)
    return SmtpProvider("127.0.0.1", sink.port, local_hostname="tests.localhost", **options)


def only_message(sink: SmtpSink) -> MimeMessage:
    [received] = sink.messages
    return received


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_delivers_text_and_html_as_alternatives(
    sink: SmtpSink, make_message: MessageFactory
) -> None:
    message = make_message(headers={"X-Journey": "onboarding"})
    receipt = await provider_for(sink).send(message)

    assert receipt.provider == "smtp"
    assert receipt.provider_message_id == message.message_id
    assert receipt.detail is not None and "queued as" in receipt.detail
    received = only_message(sink)
    assert received["To"] == "Ada Lovelace <ada@example.com>"
    assert received["From"] == "Journeyman <journeys@example.org>"
    assert received["Subject"] == "Welcome aboard"
    assert received["Message-ID"] == message.message_id
    assert received["Date"] is not None
    assert received["X-Journey"] == "onboarding"
    assert received.get_content_type() == "multipart/alternative"
    plain = received.get_body(preferencelist=("plain",))
    html = received.get_body(preferencelist=("html",))
    assert isinstance(plain, MimeMessage) and isinstance(html, MimeMessage)
    assert plain.get_content() == "Hello Ada,\nwelcome.\n"
    assert html.get_content().strip() == "<p>Hello <b>Ada</b>, welcome.</p>"


async def test_one_click_unsubscribe_headers_arrive_intact(
    sink: SmtpSink, make_message: MessageFactory
) -> None:
    # RFC 8058: both headers, the URL long enough that the header has to be folded.
    token = "3f2a" * 30
    unsubscribe = (
        f"<https://shop.example/unsubscribe/{token}>, <mailto:unsub@shop.example?subject={token}>"
    )
    message = make_message(
        headers={
            "List-Unsubscribe": unsubscribe,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
    )
    await provider_for(sink).send(message)
    received = only_message(sink)
    assert received["List-Unsubscribe"] == unsubscribe
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received.get_content_type() == "multipart/alternative"


async def test_text_only_message_is_a_single_part(
    sink: SmtpSink, make_message: MessageFactory
) -> None:
    await provider_for(sink).send(make_message(html=None, to_name=None))
    received = only_message(sink)
    assert received.get_content_type() == "text/plain"
    assert received["To"] == "ada@example.com"
    assert not received.is_multipart()


async def test_non_ascii_names_subject_and_body_survive(
    sink: SmtpSink, make_message: MessageFactory
) -> None:
    message = make_message(to_name="Zoë Ångström", subject="Grüße, Zoë ✉", text="Ça va? ✓\n")
    await provider_for(sink).send(message)
    received = only_message(sink)
    assert received["Subject"] == "Grüße, Zoë ✉"
    assert received["To"].addresses[0].display_name == "Zoë Ångström"
    body = received.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content() == "Ça va? ✓\n"


async def test_authenticates_with_the_right_password(make_message: MessageFactory) -> None:
    with SmtpSink(credentials={"mailer": PASSWORD}) as sink:
        await provider_for(sink, username="mailer", password=PASSWORD).send(make_message())
        assert len(sink.messages) == 1


async def test_wrong_password_is_permanent_and_never_echoed(make_message: MessageFactory) -> None:
    wrong = "wrong-password-123"
    with SmtpSink(credentials={"mailer": PASSWORD}) as sink:
        provider = provider_for(sink, username="mailer", password=wrong)
        with pytest.raises(PermanentDeliveryError) as caught:
            await provider.send(make_message())
        assert sink.messages == []
    assert caught.value.code == 535
    for text in (str(caught.value), repr(caught.value.__cause__), repr(provider)):
        assert wrong not in text


async def test_sending_without_auth_to_a_server_that_requires_it_is_permanent(
    make_message: MessageFactory,
) -> None:
    with (
        SmtpSink(credentials={"mailer": PASSWORD}) as sink,
        pytest.raises(PermanentDeliveryError, match="MAIL FROM") as caught,
    ):
        await provider_for(sink).send(make_message())
    assert caught.value.code == 530
    assert sink.messages == []


async def test_unreachable_server_is_retryable_and_not_delivered(
    make_message: MessageFactory,
) -> None:
    provider = SmtpProvider("127.0.0.1", unused_port(), timeout=2.0)
    with pytest.raises(RetryableDeliveryError, match="during connect") as caught:
        await provider.send(make_message())
    assert caught.value.maybe_delivered is False
    assert caught.value.code is None


async def test_refused_recipient_is_permanent(make_message: MessageFactory) -> None:
    refusals = {"gone@example.com": "550 5.1.1 No such user"}
    with SmtpSink(reject=refusals) as sink:
        with pytest.raises(PermanentDeliveryError, match="RCPT TO refused: 550") as caught:
            await provider_for(sink).send(make_message(to_address="gone@example.com"))
        assert sink.messages == []
        # The same sink still takes everyone else.
        await provider_for(sink).send(make_message())
        assert len(sink.messages) == 1
    assert caught.value.code == 550


async def test_temporarily_refused_recipient_is_retryable(make_message: MessageFactory) -> None:
    with (
        SmtpSink(reject={"busy@example.com": "451 4.7.1 Greylisted, try later"}) as sink,
        pytest.raises(RetryableDeliveryError, match="RCPT TO refused: 451") as caught,
    ):
        await provider_for(sink).send(make_message(to_address="busy@example.com"))
    assert caught.value.code == 451
    assert caught.value.maybe_delivered is False


class _HangUpAfterData:
    """Reads the whole message, then drops the connection instead of replying."""

    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received += 1
        server.transport.close()
        return "250 OK"


@pytest.fixture
def hang_up_server() -> Iterator[tuple[_HangUpAfterData, int]]:
    handler = _HangUpAfterData()
    port = unused_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="t.local")
    controller.start()
    yield handler, port
    controller.stop()


async def test_connection_lost_after_data_may_have_delivered(
    hang_up_server: tuple[_HangUpAfterData, int], make_message: MessageFactory
) -> None:
    handler, port = hang_up_server
    provider = SmtpProvider("127.0.0.1", port, timeout=5.0, local_hostname="tests.localhost")
    with pytest.raises(RetryableDeliveryError, match="during DATA") as caught:
        await provider.send(make_message())
    assert caught.value.maybe_delivered is True
    assert handler.received == 1


async def test_starttls_with_a_trusted_certificate_and_auth(
    certificate: Certificate, make_message: MessageFactory
) -> None:
    sink = SmtpSink(credentials={"mailer": PASSWORD}, tls_context=certificate.server_context())
    with sink:
        provider = provider_for(
            sink,
            security="starttls",
            ssl_context=certificate.client_context(),
            username="mailer",
            password=PASSWORD,
        )
        await provider.send(make_message())
        assert only_message(sink)["Subject"] == "Welcome aboard"


async def test_implicit_tls(certificate: Certificate, make_message: MessageFactory) -> None:
    with SmtpSink(tls_context=certificate.server_context(), implicit_tls=True) as sink:
        provider = provider_for(sink, security="ssl", ssl_context=certificate.client_context())
        await provider.send(make_message())
        assert len(sink.messages) == 1


class _AuthenticatedKeeper:
    """Keeps messages from authenticated sessions only."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        self.messages.append(envelope.original_content)
        return "250 OK"


def _mailer_password(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"mailer"
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


async def test_implicit_tls_with_auth(
    certificate: Certificate, make_message: MessageFactory
) -> None:
    # A plain aiosmtpd server rather than SmtpSink: aiosmtpd cannot tell that a connection
    # its listener wrapped in TLS is encrypted, so it must be told that AUTH is safe here.
    keeper = _AuthenticatedKeeper()
    port = unused_port()
    controller = Controller(
        keeper,
        hostname="127.0.0.1",
        port=port,
        server_hostname="t.local",
        ssl_context=certificate.server_context(),
        authenticator=_mailer_password,
        auth_require_tls=False,
    )
    controller.start()
    try:
        provider = SmtpProvider(
            "127.0.0.1",
            port,
            security="ssl",
            ssl_context=certificate.client_context(),
            username="mailer",
            password=PASSWORD,
            timeout=5.0,
            local_hostname="tests.localhost",
        )
        await provider.send(make_message())
        assert len(keeper.messages) == 1
        wrong = SmtpProvider(
            "127.0.0.1",
            port,
            security="ssl",
            ssl_context=certificate.client_context(),
            username="mailer",
            password="not-the-password",
            timeout=5.0,
            local_hostname="tests.localhost",
        )
        with pytest.raises(PermanentDeliveryError, match="AUTH refused: 535"):
            await wrong.send(make_message())
        assert len(keeper.messages) == 1
    finally:
        controller.stop()


async def test_wrong_password_over_starttls_is_permanent_and_never_echoed(
    certificate: Certificate, make_message: MessageFactory
) -> None:
    wrong = "wrong-password-over-tls"
    sink = SmtpSink(credentials={"mailer": PASSWORD}, tls_context=certificate.server_context())
    with sink:
        provider = provider_for(
            sink,
            security="starttls",
            ssl_context=certificate.client_context(),
            username="mailer",
            password=wrong,
        )
        with pytest.raises(PermanentDeliveryError, match="AUTH refused: 535") as caught:
            await provider.send(make_message())
        assert sink.messages == []
    assert wrong not in str(caught.value) and wrong not in repr(caught.value.__cause__)


async def test_untrusted_certificate_is_permanent(
    certificate: Certificate, make_message: MessageFactory
) -> None:
    # The system trust store does not know the self-signed certificate.
    with SmtpSink(tls_context=certificate.server_context()) as sink:
        with pytest.raises(PermanentDeliveryError, match="certificate") as caught:
            await provider_for(sink, security="starttls").send(make_message())
        assert sink.messages == []
    assert isinstance(caught.value.__cause__, OSError)


async def test_starttls_against_a_server_without_tls_is_permanent(
    sink: SmtpSink, make_message: MessageFactory
) -> None:
    with pytest.raises(PermanentDeliveryError, match="STARTTLS"):
        await provider_for(sink, security="starttls").send(make_message())
    assert sink.messages == []


async def test_auth_is_only_offered_over_tls_when_the_server_has_tls(
    certificate: Certificate, make_message: MessageFactory
) -> None:
    sink = SmtpSink(credentials={"mailer": PASSWORD}, tls_context=certificate.server_context())
    with sink:
        provider = provider_for(sink, username="mailer", password=PASSWORD)
        with pytest.raises(PermanentDeliveryError, match="AUTH"):
            await provider.send(make_message())


def test_configuration_is_checked_up_front() -> None:
    with pytest.raises(ValueError, match="security"):
        SmtpProvider("localhost", security="tls")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="username and password"):
        SmtpProvider("localhost", username="mailer")
    with pytest.raises(ValueError, match="timeout"):
        SmtpProvider("localhost", timeout=0)


def test_repr_hides_the_password() -> None:
    provider = SmtpProvider("localhost", username="mailer", password=PASSWORD)
    assert PASSWORD not in repr(provider)
    assert PASSWORD not in str(vars(provider))


async def test_server_that_never_greets_times_out_as_retryable(
    make_message: MessageFactory,
) -> None:
    # A listening socket nobody accepts on: the kernel completes the TCP handshake, then
    # nothing is ever said.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        provider = SmtpProvider("127.0.0.1", silent.getsockname()[1], timeout=0.3)
        with pytest.raises(RetryableDeliveryError, match="during connect") as caught:
            await provider.send(make_message())
    assert caught.value.maybe_delivered is False
    assert "timed out" in str(caught.value)
