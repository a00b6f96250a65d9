"""An in-process SMTP server that keeps what it receives.

It is the embedded dev stack's mail catcher (each message also lands as an ``.eml`` file in
``mailbox_dir``, openable in any mail client) and the real SMTP server the tests send to.
It speaks actual SMTP through ``aiosmtpd``, including AUTH, STARTTLS or implicit TLS, and
can refuse chosen recipients with a chosen reply, so the provider's error mapping is tested
against real replies rather than a stub.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import os
import socket
import ssl
import threading
import time
from collections.abc import Coroutine, Mapping
from email import message_from_bytes, policy
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def _listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so port 0 works and a taken port fails at once."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except BaseException:
        listener.close()
        raise
    return listener


class _BoundController(Controller):
    """An aiosmtpd ``Controller`` serving on a socket that is already bound.

    Plain ``Controller`` binds host and port itself and then connects to that port to check
    the server is up, so it cannot take port 0; binding first gives the real port up front.
    ``_create_server`` is aiosmtpd's documented hook for exactly this kind of override.
    """

    def __init__(self, handler: Any, listener: socket.socket, **options: Any) -> None:
        host, port = listener.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, ready_timeout=5.0, **options)
        self._listener = listener

    def _create_server(self) -> Coroutine[Any, Any, asyncio.Server]:
        return self.loop.create_server(
            self._factory_invoker, sock=self._listener, ssl=self.ssl_context
        )


def _discard(controller: Controller) -> None:
    """Clean up after a failed ``start``, whichever step it failed at."""
    controller.stop(no_assert=True)
    # When binding fails, aiosmtpd's thread returns without closing its loop; an unclosed
    # loop would surface later as a ResourceWarning.
    if not controller.loop.is_closed():
        controller.loop.close()


class _Handler:
    """aiosmtpd hooks (found by name): enforce AUTH, refuse chosen recipients, keep mail."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        # AUTH is checked here rather than with aiosmtpd's auth_required, which warns (and
        # under pytest's warnings-as-errors fails) when combined with AUTH over plain text.
        if self._sink.credentials and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        refusal = self._sink.reject.get(address.lower())
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content
        name = self._sink._keep(raw)
        return f"250 2.0.0 Ok: queued as {name}"


class SmtpSink:
    """A local SMTP server that records every message it accepts.

    ``credentials`` maps usernames to passwords and makes AUTH mandatory. ``reject`` maps
    recipient addresses to the full reply to refuse them with, e.g.
    ``{"bounce@example.com": "550 5.1.1 No such user"}``. ``tls_context`` (a server context)
    offers STARTTLS, or with ``implicit_tls`` wraps the whole connection in TLS; with TLS
    configured AUTH is only accepted over it, as real servers do.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        mailbox_dir: Path | None = None,
        *,
        credentials: Mapping[str, str] | None = None,
        reject: Mapping[str, str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        server_hostname: str = "journeyman-sink.localhost",
    ) -> None:
        if implicit_tls and tls_context is None:
            raise ValueError("implicit_tls needs a tls_context")
        self.host = host
        self.requested_port = port
        self.mailbox_dir = mailbox_dir
        self.credentials = dict(credentials or {})
        self.reject = {address.lower(): reply for address, reply in (reject or {}).items()}
        self._tls_context = tls_context
        self._implicit_tls = implicit_tls
        self._server_hostname = server_hostname
        self._controller: Controller | None = None
        self._port: int | None = None
        self._messages: list[MimeMessage] = []
        self._arrived = threading.Condition()
        self._sequence = itertools.count(1)

    @property
    def port(self) -> int:
        """The port the running sink listens on."""
        if self._port is None:
            raise RuntimeError("the sink is not running")
        return self._port

    @property
    def messages(self) -> list[MimeMessage]:
        """A snapshot of the messages received so far, oldest first, with "\\n" line ends."""
        with self._arrived:
            return list(self._messages)

    def start(self) -> int:
        """Start listening (in aiosmtpd's own thread) and return the bound port."""
        if self._controller is not None:
            raise RuntimeError("the sink is already running")
        if self.mailbox_dir is not None:
            self.mailbox_dir.mkdir(parents=True, exist_ok=True)
        listener = _listen(self.host, self.requested_port)
        controller = _BoundController(_Handler(self), listener, **self._smtp_options())
        try:
            controller.start()
        except BaseException:
            _discard(controller)
            listener.close()
            raise
        self._controller, self._port = controller, controller.port
        return controller.port

    def stop(self) -> None:
        """Stop listening; received messages stay readable. Stopping twice is harmless."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
            self._port = None

    def clear(self) -> None:
        """Forget the messages received so far (files in ``mailbox_dir`` stay)."""
        with self._arrived:
            self._messages.clear()

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[MimeMessage]:
        """Block until at least ``count`` messages arrived; raise ``TimeoutError`` if not."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"{len(self._messages)} of {count} messages after {timeout}s")
            return list(self._messages)

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _smtp_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"server_hostname": self._server_hostname}
        if self.credentials:
            options["authenticator"] = self._authenticate
            # With implicit TLS the listener wraps the socket before aiosmtpd sees it, so
            # aiosmtpd cannot tell the session is encrypted: requiring TLS would hide AUTH.
            options["auth_require_tls"] = self._tls_context is not None and not self._implicit_tls
        if self._implicit_tls:
            options["ssl_context"] = self._tls_context
        elif self._tls_context is not None:
            options["tls_context"] = self._tls_context
        return options

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        username = auth_data.login.decode("utf-8", "replace")
        expected = self.credentials.get(username)
        given = auth_data.password
        # Constant-time comparison, as a real server would; cheap habit, even in a test twin.
        ok = expected is not None and hmac.compare_digest(expected.encode(), given)
        return AuthResult(success=ok, handled=False, auth_data=username if ok else None)

    def _keep(self, raw: bytes) -> str:
        """Record one message (and write its ``.eml``); return its name."""
        name = f"{time.time_ns()}-{next(self._sequence):06d}"
        if self.mailbox_dir is not None:
            # Write then rename so a reader never sees half a message.
            partial = self.mailbox_dir / f".{name}.eml.tmp"
            partial.write_bytes(raw)
            os.replace(partial, self.mailbox_dir / f"{name}.eml")
        # The wire (and the .eml) has CRLF line ends; the parsed view uses Python's "\n" so
        # decoded bodies compare equal to the text that was sent.
        parsed = message_from_bytes(
            raw.replace(b"\r\n", b"\n"), _class=MimeMessage, policy=policy.default
        )
        with self._arrived:
            self._messages.append(parsed)
            self._arrived.notify_all()
        return name
