"""What signs the links and where they point: the tracking settings, checked at start-up.

``JOURNEYMAN_LINK_SECRET`` signs every tracking and unsubscribe link; several secrets may be
given, separated by commas: the first signs, all verify (rotate by putting a new one first and
keeping the old ones for as long as their links may be clicked; unsubscribe links never
expire). ``JOURNEYMAN_PUBLIC_URL`` is the address the API is reached at from the internet,
the base of every link.

Outside development both are required and the public URL must be HTTPS (RFC 8058: mail
providers only offer one-click unsubscribe for HTTPS links). In development a missing secret
is replaced by a random one for the life of the process, so the links it made stop working at
the next start.

Errors::

    ValueError
    └── ConfigError             (journeyman.orchestrator.config)
        └── TrackingConfigError a setting is missing or wrong; the message names the variable
"""

from __future__ import annotations

import logging
import secrets as random_secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final
from urllib.parse import urlsplit

from journeyman.orchestrator.config import ConfigError

from .consent import DEFAULT_GROUPS, SubscriptionGroups
from .links import MIN_SECRET_CHARS, TRACKING_LIFETIME, LinkSigner

log = logging.getLogger(__name__)

SECRET_VARIABLE: Final = "JOURNEYMAN_LINK_SECRET"
PUBLIC_URL_VARIABLE: Final = "JOURNEYMAN_PUBLIC_URL"


class TrackingConfigError(ConfigError):
    """The tracking settings cannot be used; the message names the variable (never a value)."""


@dataclass(frozen=True)
class TrackingConfig:
    """Everything the link routes and the send path share about links."""

    signer: LinkSigner = field(repr=False)
    public_url: str  # absolute, without a trailing slash
    groups: SubscriptionGroups = DEFAULT_GROUPS
    tracking_lifetime: timedelta = TRACKING_LIFETIME


def tracking_config(
    *,
    secret: str | None,
    public_url: str | None,
    development: bool = False,
    groups: SubscriptionGroups = DEFAULT_GROUPS,
) -> TrackingConfig:
    """Check the settings and build the configuration; raises ``TrackingConfigError``."""
    keys = [part.strip() for part in (secret or "").split(",") if part.strip()]
    if not keys:
        if not development:
            raise TrackingConfigError(
                f"{SECRET_VARIABLE} is not set: tracking and unsubscribe links are signed with"
                " it; set a long random value, for example the output of"
                " `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        log.warning(
            "%s is not set: links are signed with a random secret that lasts until this"
            " process stops",
            SECRET_VARIABLE,
        )
        keys = [random_secrets.token_urlsafe(32)]
    short = [index for index, key in enumerate(keys, 1) if len(key) < MIN_SECRET_CHARS]
    if short:
        raise TrackingConfigError(
            f"{SECRET_VARIABLE}: secret number {short[0]} is shorter than"
            f" {MIN_SECRET_CHARS} characters; use a long random value"
        )
    return TrackingConfig(
        signer=LinkSigner(keys),
        public_url=_check_public_url(public_url, development=development),
        groups=groups,
    )


def _check_public_url(value: str | None, *, development: bool) -> str:
    if not value or not value.strip():
        raise TrackingConfigError(
            f"{PUBLIC_URL_VARIABLE} is not set: links in messages need the address the API"
            " is reached at, like https://links.example.com"
        )
    url = value.strip().rstrip("/")
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise TrackingConfigError(f"{PUBLIC_URL_VARIABLE} must be an absolute http(s) URL")
    if parts.query or parts.fragment:
        raise TrackingConfigError(f"{PUBLIC_URL_VARIABLE} must not have a query or fragment")
    if parts.scheme != "https" and not development:
        raise TrackingConfigError(
            f"{PUBLIC_URL_VARIABLE} must be an https:// URL: mail providers offer one-click"
            " unsubscribe only for HTTPS links (RFC 8058)"
        )
    return url
