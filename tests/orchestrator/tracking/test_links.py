"""Link tokens: what a signature binds, and every way a token can be made wrong."""

from __future__ import annotations

import base64
import json
import string
from datetime import UTC, datetime, timedelta

import pytest

from journeyman.orchestrator.tracking import TRACKING_LIFETIME, InvalidToken, LinkSigner, LinkToken

SECRET = "a-link-secret-of-at-least-32-characters"
ISSUED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ALPHABET = string.ascii_letters + string.digits + "-_"

TOKENS = {
    "open": LinkToken("open", "journey/j/c-1@r/awareness/hi/0", "c-1", ISSUED),
    "click": LinkToken(
        "click", "journey/j/c-1@r/awareness/hi/0", "c-1", ISSUED, url="https://shop.test/a?b=1"
    ),
    "unsubscribe": LinkToken(
        "unsubscribe", "journey/j/c-1@r/awareness/hi/0", "c-1", ISSUED, group="email:marketing"
    ),
}


def flipped(text: str, at: int) -> str:
    """``text`` with the character at ``at`` replaced by another token character."""
    old = text[at]
    new = "A" if old == "." else ALPHABET[(ALPHABET.index(old) + 1) % len(ALPHABET)]
    return text[:at] + new + text[at + 1 :]


@pytest.mark.parametrize("kind", sorted(TOKENS))
def test_a_token_verifies_to_what_was_signed(kind: str) -> None:
    signer = LinkSigner(SECRET)
    token = TOKENS[kind]
    text = signer.sign(token)
    assert set(text) <= set(ALPHABET + ".")  # safe in a path segment as is
    assert signer.verify(text, kind=token.kind) == token


@pytest.mark.parametrize("kind", sorted(TOKENS))
def test_every_changed_character_is_rejected(kind: str) -> None:
    signer = LinkSigner(SECRET)
    text = signer.sign(TOKENS[kind])
    for at in range(len(text)):
        with pytest.raises(InvalidToken):
            signer.verify(flipped(text, at), kind=TOKENS[kind].kind)


def test_truncated_extended_and_foreign_tokens_are_rejected() -> None:
    signer = LinkSigner(SECRET)
    text = signer.sign(TOKENS["open"])
    for bad in (text[:-1], text + "A", text.replace(".", ""), "", ".", "a.b", text + "=="):
        with pytest.raises(InvalidToken):
            signer.verify(bad, kind="open")
    other = LinkSigner("another-secret-of-at-least-32-characters!")
    with pytest.raises(InvalidToken, match="bad signature"):
        signer.verify(other.sign(TOKENS["open"]), kind="open")


def test_a_token_only_works_for_its_own_kind() -> None:
    signer = LinkSigner(SECRET)
    with pytest.raises(InvalidToken, match="not a unsubscribe token"):
        signer.verify(signer.sign(TOKENS["click"]), kind="unsubscribe")


def test_a_click_url_cannot_be_swapped_without_the_secret() -> None:
    signer = LinkSigner(SECRET)
    payload_text, _, signature = signer.sign(TOKENS["click"]).partition(".")
    fields = json.loads(base64.urlsafe_b64decode(payload_text + "=" * (-len(payload_text) % 4)))
    fields[-1] = "https://evil.test/"
    forged = base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="bad signature"):
        signer.verify(f"{forged}.{signature}", kind="click")


def test_only_web_urls_are_signed_for_clicks() -> None:
    signer = LinkSigner(SECRET)
    for url in ("javascript:alert(1)", "mailto:a@b.test", "/relative", "https://a.test/\r\nX: y"):
        with pytest.raises(ValueError, match="absolute http"):
            signer.sign(LinkToken("click", "k", "c", ISSUED, url=url))


def test_rotated_secrets_keep_old_links_working() -> None:
    old = LinkSigner("the-old-secret-of-at-least-32-characters")
    rotated = LinkSigner(["the-new-secret-of-at-least-32-characters", "x" * 32])
    rotated_keeping_old = LinkSigner(
        ["the-new-secret-of-at-least-32-characters", "the-old-secret-of-at-least-32-characters"]
    )
    text = old.sign(TOKENS["unsubscribe"])
    assert rotated_keeping_old.verify(text, kind="unsubscribe") == TOKENS["unsubscribe"]
    with pytest.raises(InvalidToken):
        rotated.verify(text, kind="unsubscribe")
    # New links are signed with the first secret, which the old signer does not know.
    with pytest.raises(InvalidToken):
        old.verify(rotated_keeping_old.sign(TOKENS["open"]), kind="open")


def test_short_secrets_are_refused_and_never_shown() -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        LinkSigner("short")
    assert SECRET not in repr(LinkSigner(SECRET))


def test_tracking_expires_and_unsubscribing_never_does() -> None:
    later = ISSUED + TRACKING_LIFETIME + timedelta(seconds=1)
    assert not TOKENS["click"].expired(ISSUED + TRACKING_LIFETIME)
    assert TOKENS["click"].expired(later)
    assert TOKENS["open"].expired(later)
    assert not TOKENS["unsubscribe"].expired(ISSUED + timedelta(days=365 * 30))
