"""The email message model: deterministic ids and no way to smuggle in headers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from journeyman.channels import EmailMessage, message_id_for

MessageFactory = Callable[..., EmailMessage]


def test_message_id_is_deterministic_per_send_key() -> None:
    first = message_id_for("j1/c1/welcome", from_address="Journeyman <journeys@example.org>")
    again = message_id_for("j1/c1/welcome", from_address="journeys@example.org")
    other = message_id_for("j1/c2/welcome", from_address="journeys@example.org")
    assert first == again
    assert first != other
    assert first.startswith("<") and first.endswith("@example.org>")
    assert "c1" not in first  # the key is hashed, not copied into the header


def test_message_id_without_a_sender_domain_still_is_valid(make_message: MessageFactory) -> None:
    message_id = message_id_for("k", from_address="not an address")
    assert message_id.endswith("@journeyman.invalid>")
    assert make_message(message_id=message_id).message_id == message_id


def test_valid_message_builds(make_message: MessageFactory) -> None:
    message = make_message(headers={"List-Unsubscribe": "<https://example.org/u>"})
    assert message.envelope_sender == "journeys@example.org"


@pytest.mark.parametrize(
    "overrides",
    [
        {"subject": "Hi\r\nBcc: victim@example.com"},
        {"to_name": "Ada\nBcc: victim@example.com"},
        {"from_address": "a@example.org\nBcc: victim@example.com"},
        {"to_address": "ada@example.com, victim@example.com"},
        {"to_address": "ada"},
        {"to_address": "Ada <ada@example.com>"},
        {"from_address": "Journeyman"},
        {"message_id": "no-angle-brackets@example.org"},
        {"headers": {"X-Journey": "a\r\nBcc: victim@example.com"}},
        {"headers": {"Bad Name": "x"}},
        {"headers": {"Bcc": "victim@example.com"}},
        {"headers": {"message-id": "<x@y>"}},
        {"headers": {"Content-Type": "text/plain"}},
    ],
)
def test_invalid_fields_are_refused(
    make_message: MessageFactory, overrides: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        make_message(**overrides)
