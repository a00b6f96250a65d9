"""Signed per-customer tokens: the stronger mode of the browser routes of in-app messages.

A write key is public in browsers, so with the write key alone anyone who knows (or guesses)
a customer's id can list that customer's in-app messages. A token closes that: the site's
backend, which knows who is signed in, asks the API for a token for that customer
(``POST /api/in-app/tokens``, admin token) and hands it to the page; the page sends it with
the write key. When tokens are required (``in_app_settings.require_token``), a request
without a valid token for the id it names is refused.

A token is ``v1.<expiry, unix seconds>.<HMAC-SHA256 of the customer id and the expiry>``.
The signing key is derived from the admin token, so tokens need no storage and changing the
admin token revokes them all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

VERSION = "v1"
DEFAULT_TTL = timedelta(hours=24)
MAX_TTL = timedelta(days=30)
# Keeps the signing key apart from any other use of the admin token.
_PURPOSE = b"journeyman in-app customer tokens v1"


@dataclass(frozen=True)
class CustomerToken:
    token: str
    customer_id: str
    expires_at: datetime


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()


def _signature(secret: str, customer_id: str, expires: int) -> str:
    # JSON keeps the two values apart whatever characters the id holds.
    signed = json.dumps([customer_id, expires], ensure_ascii=False).encode()
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def issue(
    secret: str, customer_id: str, *, now: datetime, ttl: timedelta = DEFAULT_TTL
) -> CustomerToken:
    """A token for ``customer_id`` valid for ``ttl`` (at most ``MAX_TTL``)."""
    if not timedelta(0) < ttl <= MAX_TTL:
        raise ValueError(f"a token lives between 1 second and {MAX_TTL.days} days")
    expires = int((now + ttl).timestamp())
    token = f"{VERSION}.{expires}.{_signature(secret, customer_id, expires)}"
    return CustomerToken(token, customer_id, datetime.fromtimestamp(expires, UTC))


def verify(secret: str, customer_id: str, token: str, *, now: datetime) -> bool:
    """Whether ``token`` was issued for ``customer_id`` and has not expired at ``now``."""
    version, _, rest = token.partition(".")
    expires_text, _, signature = rest.partition(".")
    if version != VERSION or not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    expected = _signature(secret, customer_id, expires)
    # Compared before the expiry, and in constant time: the answer's timing says nothing.
    valid = hmac.compare_digest(signature.encode(), expected.encode())
    return valid and now.timestamp() < expires


async def tokens_required(conn: asyncpg.Connection | asyncpg.Pool) -> bool:
    """Whether the browser routes refuse requests without a customer token."""
    return bool(await conn.fetchval("SELECT require_token FROM in_app_settings"))


async def require_tokens(conn: asyncpg.Connection | asyncpg.Pool, required: bool) -> None:
    """Turn the token requirement on or off, for every API process at once."""
    await conn.execute(
        "UPDATE in_app_settings SET require_token = $1, updated_at = now()", required
    )
