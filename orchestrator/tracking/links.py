"""Signed link tokens: what an open pixel, a tracked link or an unsubscribe link stands for.

A token is ``<payload>.<signature>``, both base64url without padding. The payload is compact
JSON ``[1, kind, send_key, customer_id, issued_at, extra]``: ``extra`` is the link's URL for a
click, the subscription group for an unsubscribe, and absent for an open. The signature is
HMAC-SHA256 over a fixed prefix and the payload bytes, cut to 128 bits (as in HMAC-SHA-256-128).

Tokens are signed, not encrypted: whoever holds the link can read the send key and the
customer id in it, and no one without the secret can make or change one. A click's URL is
inside the signed payload, so the click route only ever redirects to a URL that was in the
message: there is no open redirect.

Verification is strict: a token that is not in canonical form (a different base64 spelling of
the same bytes, stray characters, a payload that is not the expected JSON), whose signature is
wrong for every configured secret, or whose kind is not the one the route expects is invalid.
Signatures are compared in constant time.

Errors::

    ValueError
    └── InvalidToken     not a token this engine signed for this use (the routes answer 404)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import urlsplit

Kind = Literal["open", "click", "unsubscribe"]

# Opens and clicks of messages older than this are not recorded (a click still redirects);
# unsubscribe links never expire: a customer must always be able to leave.
TRACKING_LIFETIME: Final = timedelta(days=400)

# Long URLs exist (campaign parameters), but a token past this is not one of ours.
MAX_TOKEN_CHARS: Final = 6000
MAX_URL_CHARS: Final = 4000
SIGNATURE_BYTES: Final = 16
# Secrets are random strings; shorter ones could be guessed offline from a single link.
MIN_SECRET_CHARS: Final = 32

_VERSION: Final = 1
_CODES: Final[dict[str, Kind]] = {"o": "open", "c": "click", "u": "unsubscribe"}
_KIND_CODES: Final[dict[Kind, str]] = {kind: code for code, kind in _CODES.items()}
_DOMAIN: Final = b"journeyman-link\x00"  # keeps these signatures apart from any other use
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]+")


class InvalidToken(ValueError):
    """Not a token this engine signed for this use; the message says why (never shown)."""


@dataclass(frozen=True)
class LinkToken:
    """What a link stands for: a kind of action on one message to one customer."""

    kind: Kind
    send_key: str  # the delivery ledger's key for the message (table ``deliveries``)
    customer_id: str
    issued_at: datetime
    url: str | None = None  # clicks: where the link goes
    group: str | None = None  # unsubscribes: the subscription group, like "email:marketing"

    def expired(self, now: datetime, lifetime: timedelta = TRACKING_LIFETIME) -> bool:
        """Whether opens and clicks of this link are no longer recorded (unsubscribes never
        expire)."""
        return self.kind != "unsubscribe" and now - self.issued_at > lifetime


def is_web_url(url: str) -> bool:
    """An absolute http(s) URL with a host: the only links worth tracking or redirecting to."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    # Whitespace or control characters could split the Location header of the redirect.
    printable = not any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url)
    return printable and parts.scheme in ("http", "https") and bool(parts.netloc)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Decode base64url without padding, accepting only the canonical spelling.

    The last character of an unpadded string carries unused bits; a decoder that ignores
    them would accept several spellings of one token, so the result is re-encoded and
    compared.
    """
    if not _BASE64URL.fullmatch(text):
        raise InvalidToken("not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("not base64url") from None
    if _b64encode(data) != text:
        raise InvalidToken("not the canonical base64url spelling")
    return data


class LinkSigner:
    """Signs tokens with the first secret; verifies with any of them (so a secret can be
    rotated without breaking the links already in inboxes: put the new one first)."""

    def __init__(self, secrets: str | Sequence[str]) -> None:
        keys = [secrets] if isinstance(secrets, str) else list(secrets)
        if not keys:
            raise ValueError("a link signer needs at least one secret")
        for key in keys:
            if len(key) < MIN_SECRET_CHARS:
                raise ValueError(
                    f"a link secret must be at least {MIN_SECRET_CHARS} characters long"
                )
        self._keys = [key.encode("utf-8") for key in keys]

    def __repr__(self) -> str:  # keep secrets out of tracebacks and debug output
        return f"LinkSigner(secrets=*** x{len(self._keys)})"

    def _mac(self, key: bytes, payload: bytes) -> bytes:
        return hmac.new(key, _DOMAIN + payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]

    def sign(self, token: LinkToken) -> str:
        """The token as URL-safe text; raises ValueError for a token that could not verify."""
        fields: list[Any] = [
            _VERSION,
            _KIND_CODES[token.kind],
            token.send_key,
            token.customer_id,
            int(token.issued_at.timestamp()),
        ]
        if token.kind == "click":
            if token.url is None or not is_web_url(token.url) or len(token.url) > MAX_URL_CHARS:
                raise ValueError("a click token needs an absolute http(s) URL")
            fields.append(token.url)
        elif token.kind == "unsubscribe":
            if not token.group:
                raise ValueError("an unsubscribe token needs a subscription group")
            fields.append(token.group)
        payload = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
        text = f"{_b64encode(payload)}.{_b64encode(self._mac(self._keys[0], payload))}"
        if len(text) > MAX_TOKEN_CHARS:
            raise ValueError("the link is too long to sign (URL, send key or customer id)")
        return text

    def verify(self, text: str, *, kind: Kind) -> LinkToken:
        """The token ``text`` stands for, if this engine signed it for ``kind``."""
        if len(text) > MAX_TOKEN_CHARS:
            raise InvalidToken("too long")
        payload_text, dot, signature_text = text.partition(".")
        if not dot:
            raise InvalidToken("no signature")
        payload = _b64decode(payload_text)
        signature = _b64decode(signature_text)
        # Every key is tried, so the time taken says nothing about which one matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(self._mac(key, payload), signature)
        if not matched:
            raise InvalidToken("bad signature")
        token = _parse(payload)
        if token.kind != kind:
            raise InvalidToken(f"a {token.kind} token, not a {kind} token")
        return token


def _parse(payload: bytes) -> LinkToken:
    """The fields of a payload whose signature is good (so malformed means a bug or a very
    old version, never an attacker)."""
    try:
        fields = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("payload is not JSON") from None
    if not isinstance(fields, list) or len(fields) < 5 or fields[0] != _VERSION:
        raise InvalidToken("unknown payload version")
    _, code, send_key, customer_id, issued, *extra = fields
    kind = _CODES.get(code) if isinstance(code, str) else None
    if (
        kind is None
        or not isinstance(send_key, str)
        or not isinstance(customer_id, str)
        or not isinstance(issued, int)
        or isinstance(issued, bool)
    ):
        raise InvalidToken("malformed payload")
    wanted = 0 if kind == "open" else 1
    if len(extra) != wanted or not all(isinstance(value, str) for value in extra):
        raise InvalidToken("malformed payload")
    url = extra[0] if kind == "click" else None
    if url is not None and not is_web_url(url):
        raise InvalidToken("click URL is not an absolute http(s) URL")
    try:
        issued_at = datetime.fromtimestamp(issued, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidToken("issue time out of range") from None
    return LinkToken(
        kind=kind,
        send_key=send_key,
        customer_id=customer_id,
        issued_at=issued_at,
        url=url,
        group=extra[0] if kind == "unsubscribe" else None,
    )
