"""The dashboard's sign-in cookie: proof of the admin token that does not contain it.

The cookie holds an expiry time and an HMAC-SHA256 of a fixed label and that time, keyed by
the admin token: ``v1.<expires unix seconds>.<hex digest>``. Whoever reads the cookie learns
neither the token nor anything that works on the API's ``/api`` routes; changing the admin
token signs everyone out; a copied cookie stops working when it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final

COOKIE_NAME: Final = "journeyman_dashboard"
COOKIE_PATH: Final = "/dashboard"
LIFETIME_SECONDS: Final = 12 * 3600
_LABEL: Final = b"journeyman dashboard session v1\x00"
_PREFIX: Final = "v1"


def _digest(admin_token: str, expires: int) -> str:
    message = _LABEL + str(expires).encode("ascii")
    return hmac.new(admin_token.encode("utf-8"), message, hashlib.sha256).hexdigest()


def issue(admin_token: str, *, now: float | None = None) -> str:
    """A cookie value valid for ``LIFETIME_SECONDS`` from ``now``."""
    expires = int(now if now is not None else time.time()) + LIFETIME_SECONDS
    return f"{_PREFIX}.{expires}.{_digest(admin_token, expires)}"


def valid(value: str | None, admin_token: str, *, now: float | None = None) -> bool:
    """Whether ``value`` was issued for this admin token and has not expired."""
    if not value:
        return False
    prefix, _, rest = value.partition(".")
    expires_text, _, digest = rest.partition(".")
    digits = expires_text.isascii() and expires_text.isdigit() and len(expires_text) <= 12
    if prefix != _PREFIX or not digits:
        return False
    expires = int(expires_text)
    if expires <= (now if now is not None else time.time()):
        return False
    # Constant time: how much of a guess matched must not show in the answer's timing.
    expected = _digest(admin_token, expires).encode("ascii")
    return hmac.compare_digest(digest.encode("ascii", "replace"), expected)


def token_matches(supplied: str, admin_token: str) -> bool:
    """Whether a typed or sent token is the admin token, compared in constant time."""
    return hmac.compare_digest(supplied.strip().encode("utf-8"), admin_token.encode("utf-8"))
