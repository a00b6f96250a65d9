"""The SMTP sink: ports, the mailbox folder, waiting for mail and clean failure to start."""

from __future__ import annotations

import smtplib
import socket
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from journeyman.channels import SmtpSink

RAW = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: Hello %d\r\n\r\nBody %d\r\n"


def send_raw(port: int, number: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="tests.localhost", timeout=5) as client:
        client.sendmail("a@example.org", ["b@example.com"], RAW % (number, number))


def test_port_zero_binds_a_free_port_each_time() -> None:
    with SmtpSink() as first, SmtpSink() as second:
        assert first.port > 0 and second.port > 0
        assert first.port != second.port


def test_port_is_unknown_when_not_running() -> None:
    sink = SmtpSink()
    with pytest.raises(RuntimeError, match="not running"):
        _ = sink.port
    port = sink.start()
    assert sink.port == port
    sink.stop()
    sink.stop()  # harmless
    with pytest.raises(RuntimeError, match="not running"):
        _ = sink.port


def test_messages_are_parsed_in_arrival_order_and_kept_after_stop() -> None:
    with SmtpSink() as sink:
        send_raw(sink.port, 1)
        send_raw(sink.port, 2)
    assert [m["Subject"] for m in sink.messages] == ["Hello 1", "Hello 2"]
    assert sink.messages[0].get_content() == "Body 1\n"
    sink.clear()
    assert sink.messages == []


def test_each_message_is_written_as_an_eml_file(tmp_path: Path) -> None:
    mailbox = tmp_path / "mail"  # created by the sink
    with SmtpSink(mailbox_dir=mailbox) as sink:
        send_raw(sink.port, 1)
        send_raw(sink.port, 2)
    files = sorted(mailbox.iterdir())
    assert [f.suffix for f in files] == [".eml", ".eml"]  # and no half-written leftovers
    first = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert first["Subject"] == "Hello 1"
    assert files[1].read_bytes().endswith(b"Body 2\r\n")


def test_wait_for_messages_returns_once_enough_arrived() -> None:
    with SmtpSink() as sink:
        send_raw(sink.port, 1)
        assert len(sink.wait_for_messages(1, timeout=5)) == 1
        with pytest.raises(TimeoutError, match="1 of 2"):
            sink.wait_for_messages(2, timeout=0.1)


def test_a_taken_port_fails_start_cleanly() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sink = SmtpSink(port=port)
        with pytest.raises(OSError):
            sink.start()
    # Nothing half-started is left behind: the sink can start again elsewhere.
    sink.requested_port = 0
    with sink:
        send_raw(sink.port, 1)
    assert len(sink.messages) == 1


def test_implicit_tls_needs_a_context() -> None:
    with pytest.raises(ValueError, match="tls_context"):
        SmtpSink(implicit_tls=True)
