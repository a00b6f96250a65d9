"""Which link configuration a process signs and checks tracking and unsubscribe links with.

Production sets ``JOURNEYMAN_LINK_SECRET`` and ``JOURNEYMAN_PUBLIC_URL`` on the API and every
worker alike (the workers sign, the API verifies). ``journeyman up`` keeps a generated
secret in the data dir and serves links from the local API address. Without a secret, links
are off: messages carry no tracked links and no one-click unsubscribe, which is logged.
"""

from __future__ import annotations

import logging

from .config import ENVIRONMENT, ConfigError, Settings
from .credentials import Credentials
from .tracking.config import TrackingConfig, tracking_config
from .tracking.consent import DEFAULT_GROUPS, SubscriptionGroups

log = logging.getLogger(__name__)


def link_config(
    settings: Settings,
    credentials: Credentials | None,
    *,
    groups: SubscriptionGroups = DEFAULT_GROUPS,
) -> TrackingConfig | None:
    """The link configuration, or None when no secret is known; ``ConfigError`` when the
    settings cannot be used (a short secret, a public URL that is not https)."""
    if settings.link_secret is not None:
        if settings.public_url is None:
            raise ConfigError(
                f"{ENVIRONMENT['link_secret']} is set, so {ENVIRONMENT['public_url']} must be"
                " too: links in messages need the address customers reach the API at"
            )
        return tracking_config(
            secret=settings.link_secret.get_secret_value(),
            public_url=settings.public_url,
            groups=groups,
        )
    if credentials is not None and credentials.link_secret is not None:
        # Development: the data dir's secret and, unless given, the local API address.
        public = settings.public_url or f"http://{settings.api_host}:{settings.api_port}"
        return tracking_config(
            secret=credentials.link_secret, public_url=public, development=True, groups=groups
        )
    log.warning(
        "%s is not set: messages go out without tracked links or one-click unsubscribe",
        ENVIRONMENT["link_secret"],
    )
    return None
