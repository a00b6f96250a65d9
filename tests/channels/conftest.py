"""Shared fixtures for the channel tests: a running sink, messages and a TLS certificate."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from journeyman.channels import EmailMessage, SmtpSink, message_id_for

MessageFactory = Callable[..., EmailMessage]


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, with its key."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl CLI is not installed, so no certificate for the TLS tests")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return Certificate(cert=cert, key=key)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        yield running


@pytest.fixture
def make_message() -> MessageFactory:
    """Build a valid ``EmailMessage``; keyword arguments override any field."""

    def build(**overrides: Any) -> EmailMessage:
        fields: dict[str, Any] = {
            "to_address": "ada@example.com",
            "to_name": "Ada Lovelace",
            "from_address": "Journeyman <journeys@example.org>",
            "subject": "Welcome aboard",
            "text": "Hello Ada,\nwelcome.\n",
            "html": "<p>Hello <b>Ada</b>, welcome.</p>",
            "message_id": message_id_for(
                "journey-1/customer-1/welcome", from_address="x@example.org"
            ),
        }
        fields.update(overrides)
        return EmailMessage(**fields)

    return build
