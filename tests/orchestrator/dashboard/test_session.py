"""The sign-in cookie: valid for its token and lifetime only, and never the token itself."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from journeyman.orchestrator.dashboard import session

TOKEN = "adm_4f1d9c2a7b"
NOW = 1_800_000_000.0


def test_a_cookie_proves_the_token_without_holding_it() -> None:
    value = session.issue(TOKEN, now=NOW)
    assert TOKEN not in value
    prefix, expires, digest = value.split(".")
    assert (prefix, int(expires)) == ("v1", int(NOW) + session.LIFETIME_SECONDS)
    # The digest is an HMAC keyed by the token, so only the token's holder could make it.
    label = b"journeyman dashboard session v1\x00" + expires.encode()
    assert digest == hmac.new(TOKEN.encode(), label, hashlib.sha256).hexdigest()
    assert session.valid(value, TOKEN, now=NOW)
    assert session.valid(value, TOKEN, now=NOW + session.LIFETIME_SECONDS - 1)


def test_a_cookie_stops_working_when_it_expires_or_the_token_changes() -> None:
    value = session.issue(TOKEN, now=NOW)
    assert not session.valid(value, TOKEN, now=NOW + session.LIFETIME_SECONDS)
    assert not session.valid(value, "adm_new_token", now=NOW)


def test_a_later_expiry_cannot_be_written_in() -> None:
    _, expires, digest = session.issue(TOKEN, now=NOW).split(".")
    stretched = f"v1.{int(expires) + 86400 * 365}.{digest}"
    assert not session.valid(stretched, TOKEN, now=NOW)


@pytest.mark.parametrize(
    "value",
    [None, "", "v1", "v1..", "v2.1900000000.00", "v1.abc.00",
     "v1.\uff11\uff19\uff10\uff10000000.00",  # full-width digits
     "v1.9999999999999.00", "v1.1900000000.zz", "v1.1900000000.é", TOKEN],
)  # fmt: skip
def test_malformed_cookies_are_refused(value: str | None) -> None:
    assert not session.valid(value, TOKEN, now=NOW)


def test_the_typed_token_is_compared_exactly_apart_from_surrounding_space() -> None:
    assert session.token_matches(f"  {TOKEN}\n", TOKEN)
    assert not session.token_matches(TOKEN[:-1], TOKEN)
    assert not session.token_matches(TOKEN.upper(), TOKEN)
    assert not session.token_matches("", TOKEN)
