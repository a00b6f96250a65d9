"""Tracking and consent: signed links, opens and clicks as events, unsubscribes, suppressions.

- ``links``: signing and verifying the tokens in tracking and unsubscribe links.
- ``rewrite``: tracked links and the open pixel in an HTML body; the unsubscribe headers.
- ``consent``: subscription groups, customers' choices, the suppression list, ``may_send``.
- ``recording``: opens, clicks and subscription changes, recorded through ingest.
- ``config``: the secret and the public URL, checked at start-up.
- ``forms``: reading form bodies (one-click unsubscribe, the preference page).

The HTTP routes are in ``journeyman.orchestrator.api.routes.tracking``.
"""

from .config import (
    PUBLIC_URL_VARIABLE,
    SECRET_VARIABLE,
    TrackingConfig,
    TrackingConfigError,
    tracking_config,
)
from .consent import (
    DEFAULT_GROUPS,
    Decision,
    Preference,
    SubscriptionGroup,
    SubscriptionGroups,
    UnknownGroupError,
    lift_suppressions,
    may_send,
    preferences,
    set_subscription,
    suppress,
)
from .links import TRACKING_LIFETIME, InvalidToken, LinkSigner, LinkToken
from .recording import EMAIL_OPENED, LINK_CLICKED, SUBSCRIBED, UNSUBSCRIBED
from .rewrite import (
    click_url,
    open_pixel_url,
    tracked_html,
    unsubscribe_headers,
    unsubscribe_url,
)

__all__ = [
    "DEFAULT_GROUPS",
    "EMAIL_OPENED",
    "LINK_CLICKED",
    "PUBLIC_URL_VARIABLE",
    "SECRET_VARIABLE",
    "SUBSCRIBED",
    "TRACKING_LIFETIME",
    "UNSUBSCRIBED",
    "Decision",
    "InvalidToken",
    "LinkSigner",
    "LinkToken",
    "Preference",
    "SubscriptionGroup",
    "SubscriptionGroups",
    "TrackingConfig",
    "TrackingConfigError",
    "UnknownGroupError",
    "click_url",
    "lift_suppressions",
    "may_send",
    "open_pixel_url",
    "preferences",
    "set_subscription",
    "suppress",
    "tracked_html",
    "tracking_config",
    "unsubscribe_headers",
    "unsubscribe_url",
]
