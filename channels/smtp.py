"""Deliver email over SMTP with the standard library, off the event loop.

``smtplib`` is blocking, so each send runs in a thread on a fresh connection: no pool to go
stale between the minutes or days that separate journey sends. The threads are SMTP's own, not
the event loop's default pool, which also resolves host names for the HTTP providers and the
database: SMTP servers that stall must not hold up every other channel. A cancelled ``send``
cannot interrupt its thread; the socket ``timeout`` bounds how long the thread can outlive it.

Failures map onto ``journeyman.channels.errors`` by the SMTP reply code (5xx permanent, 4xx
retryable) and, for lost connections, by how far the conversation got: before the message
data the server cannot have it (``maybe_delivered=False``); from the ``DATA`` command on it
may (``maybe_delivered=True``, conservatively including a drop right after ``DATA``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import smtplib
import ssl
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email import policy
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime
from typing import Literal, get_args

from pydantic import SecretStr

from .base import DeliveryReceipt, EmailMessage
from .errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError

SmtpSecurity = Literal["none", "starttls", "ssl"]

PROVIDER = "smtp"

# SMTP conversations under way at once in a process; more wait for a thread. Threads start
# when needed and are shared by every SmtpProvider.
MAX_CONVERSATIONS = 32


@functools.cache
def _conversation_threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(MAX_CONVERSATIONS, thread_name_prefix="journeyman-smtp")


def build_mime(message: EmailMessage, *, date: datetime) -> MimeMessage:
    """The MIME form of ``message``: text alone, or multipart/alternative text and HTML."""
    mime = MimeMessage()
    mime["From"] = message.from_address
    mime["To"] = Address(display_name=message.to_name or "", addr_spec=message.to_address)
    mime["Subject"] = message.subject
    mime["Date"] = format_datetime(date)
    mime["Message-ID"] = message.message_id
    for name, value in message.headers.items():
        mime[name] = value
    mime.set_content(message.text)
    if message.html is not None:
        mime.add_alternative(message.html, subtype="html")
    return mime


def _decode(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _reply_error(code: int, reply: bytes | str, *, stage: str, in_data: bool) -> DeliveryError:
    """Classify an SMTP reply: 5xx is final, 4xx means later, anything else is unexpected."""
    text = f"SMTP {stage} refused: {code} {_decode(reply)}".rstrip()
    if 500 <= code <= 599:
        return PermanentDeliveryError(text, provider=PROVIDER, code=code)
    # A 4xx is an explicit "not now", so the server does not have the message. A reply
    # that is neither 4xx nor 5xx to the message data leaves us unsure.
    maybe = in_data and not 400 <= code <= 499
    return RetryableDeliveryError(text, provider=PROVIDER, code=code, maybe_delivered=maybe)


class SmtpProvider:
    """Sends each ``EmailMessage`` over a new SMTP connection.

    ``security`` is ``"none"`` (plain), ``"starttls"`` (upgrade after connecting, required)
    or ``"ssl"`` (TLS from the first byte). ``ssl_context`` replaces the system default
    trust, e.g. to trust a test certificate. ``local_hostname`` is the EHLO name; by default
    smtplib looks up this host's FQDN, which can be slow where DNS is poor.
    """

    name = PROVIDER

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        security: SmtpSecurity = "none",
        username: str | None = None,
        password: SecretStr | str | None = None,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if security not in get_args(SmtpSecurity):
            raise ValueError(f"security must be one of {get_args(SmtpSecurity)}")
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        # Kept as SecretStr so a repr or log of this object cannot show it.
        self._password = SecretStr(password) if isinstance(password, str) else password
        self.timeout = timeout
        self._ssl_context = ssl_context
        self._local_hostname = local_hostname

    def __repr__(self) -> str:
        auth = f", username={self.username!r}" if self.username else ""
        return f"SmtpProvider({self.host!r}, {self.port}, security={self.security!r}{auth})"

    async def send(self, message: EmailMessage) -> DeliveryReceipt:
        """Deliver ``message``; raise ``PermanentDeliveryError`` or ``RetryableDeliveryError``."""
        try:
            mime = build_mime(message, date=datetime.now(UTC))
        except (ValueError, MessageError) as exc:
            raise PermanentDeliveryError(
                f"message cannot be encoded: {exc}", provider=PROVIDER
            ) from exc
        # As asyncio.to_thread does, but in SMTP's own threads (see the module docstring).
        conversation = functools.partial(
            contextvars.copy_context().run,
            self._deliver,
            mime,
            message.envelope_sender,
            message.to_address,
        )
        reply = await asyncio.get_running_loop().run_in_executor(
            _conversation_threads(), conversation
        )
        return DeliveryReceipt(
            provider=PROVIDER,
            provider_message_id=message.message_id,
            accepted_at=datetime.now(UTC),
            detail=reply or None,
        )

    def _connect(self) -> smtplib.SMTP:
        # smtplib closes its socket itself when connecting fails part way (refused, no
        # greeting, TLS handshake), so nothing leaks although ``client`` stays unset.
        if self.security == "ssl":
            return smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self._local_hostname,
                timeout=self.timeout,
                context=self._context(),
            )
        return smtplib.SMTP(
            self.host, self.port, local_hostname=self._local_hostname, timeout=self.timeout
        )

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def _deliver(self, mime: MimeMessage, sender: str, recipient: str) -> str:
        """Run one SMTP conversation (in a worker thread); return the server's final reply."""
        stage = "connect"
        client: smtplib.SMTP | None = None
        try:
            client = self._connect()
            stage = "EHLO"
            client.ehlo_or_helo_if_needed()
            if self.security == "starttls":
                stage = "STARTTLS"
                client.starttls(context=self._context())
                client.ehlo()
            if self.username is not None and self._password is not None:
                stage = "AUTH"
                client.login(self.username, self._password.get_secret_value())
            stage = "MAIL FROM"
            options: list[str] = []
            mime_policy = policy.SMTP
            if not (sender + recipient).isascii():
                # Internationalised addresses need SMTPUTF8 end to end; without it the
                # server could only mangle them.
                if not client.has_extn("smtputf8"):
                    raise PermanentDeliveryError(
                        "addresses need SMTPUTF8, which the server does not offer",
                        provider=PROVIDER,
                    )
                options = ["SMTPUTF8", "BODY=8BITMIME"]
                mime_policy = policy.SMTPUTF8
            code, reply = client.mail(sender, options)
            if code != 250:
                raise _reply_error(code, reply, stage=stage, in_data=False)
            stage = "RCPT TO"
            code, reply = client.rcpt(recipient)
            if code not in (250, 251):
                raise _reply_error(code, reply, stage=stage, in_data=False)
            stage = "DATA"
            code, reply = client.data(mime.as_bytes(policy=mime_policy))
            if code != 250:
                raise _reply_error(code, reply, stage=stage, in_data=True)
            accepted = _decode(reply)
            # The message is accepted; a rude goodbye changes nothing.
            with contextlib.suppress(OSError):
                client.quit()
            return accepted
        except smtplib.SMTPResponseException as exc:
            # Raised inside smtplib: greeting, EHLO, STARTTLS, AUTH or the DATA command.
            raise _reply_error(
                exc.smtp_code, exc.smtp_error, stage=stage, in_data=stage == "DATA"
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            # The server lacks STARTTLS or AUTH: a configuration mismatch, not a blip.
            raise PermanentDeliveryError(
                f"SMTP {stage} not supported by {self.host}:{self.port}: {exc}",
                provider=PROVIDER,
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            raise PermanentDeliveryError(
                f"TLS certificate of {self.host}:{self.port} refused: {exc.verify_message}",
                provider=PROVIDER,
            ) from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise self._lost(stage, exc) from exc
        except smtplib.SMTPException as exc:
            # What is left is smtplib refusing to go on, e.g. no common AUTH mechanism.
            raise PermanentDeliveryError(f"SMTP {stage} failed: {exc}", provider=PROVIDER) from exc
        except OSError as exc:  # refused, unreachable, timeout, DNS, TLS handshake
            raise self._lost(stage, exc) from exc
        finally:
            if client is not None:
                client.close()

    def _lost(self, stage: str, exc: BaseException) -> RetryableDeliveryError:
        reason = str(exc) or type(exc).__name__
        return RetryableDeliveryError(
            f"SMTP connection to {self.host}:{self.port} lost during {stage}: {reason}",
            provider=PROVIDER,
            maybe_delivered=stage == "DATA",
        )
