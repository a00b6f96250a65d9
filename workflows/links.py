"""What links add to a composed message: tracked links, the open pixel, one-click unsubscribe
headers for email, and the delivery-status callback for SMS.

Without a link configuration (no ``JOURNEYMAN_LINK_SECRET``) messages go out as composed.
"""

from __future__ import annotations

from dataclasses import replace

from journeyman.channels import EmailMessage
from journeyman.channels.base import SmsMessage
from journeyman.orchestrator.tracking.config import TrackingConfig
from journeyman.orchestrator.tracking.rewrite import (
    tracked_html,
    unsubscribe_headers,
    unsubscribe_url,
)

from .compose import Outbound

# Where Twilio reports delivery: the API's signed status-callback route.
TWILIO_STATUS_PATH = "/webhooks/twilio"


def unsubscribe_link(
    config: TrackingConfig | None, *, send_key: str, customer_id: str, group: str | None
) -> str | None:
    """The ``{{ unsubscribe_url }}`` of a message's templates (None: links are off)."""
    if config is None:
        return None
    if group is None:
        return None  # transactional: there is nothing to leave
    return unsubscribe_url(
        send_key=send_key,
        customer_id=customer_id,
        public_url=config.public_url,
        secret=config.signer,
        group=group,
    )


def with_links(
    outbound: Outbound,
    config: TrackingConfig | None,
    *,
    send_key: str,
    customer_id: str,
    group: str | None,
) -> Outbound:
    if config is None:
        return outbound
    message = outbound.message
    if isinstance(message, EmailMessage):
        html = message.html
        if html is not None:
            html = tracked_html(
                html,
                send_key=send_key,
                customer_id=customer_id,
                public_url=config.public_url,
                secret=config.signer,
            )
        headers = dict(message.headers)
        if group is not None:
            # Transactional mail (receipts) carries no unsubscribe: there is nothing to leave.
            headers.update(
                unsubscribe_headers(
                    send_key=send_key,
                    customer_id=customer_id,
                    public_url=config.public_url,
                    secret=config.signer,
                    group=group,
                )
            )
        return replace(
            outbound, message=message.model_copy(update={"html": html, "headers": headers})
        )
    if isinstance(message, SmsMessage):
        callback = config.public_url + TWILIO_STATUS_PATH
        return replace(outbound, message=message.model_copy(update={"status_callback": callback}))
    return outbound
