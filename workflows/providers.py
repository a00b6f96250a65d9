"""The providers a worker sends with, one per channel, and how a message reaches its own.

Built once per worker from configuration. A channel with no provider configured fails its
sends visibly (recorded in the ledger with the reason) rather than dropping them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from journeyman.channels import DeliveryReceipt, EmailMessage, EmailProvider, PermanentDeliveryError
from journeyman.channels.base import (
    InAppMessage,
    InAppProvider,
    PushMessage,
    PushProvider,
    SmsMessage,
    SmsProvider,
    WebhookMessage,
    WebhookProvider,
)

from .compose import OutboundMessage
from .plan import Channel

# Channels where sending again after an attempt that may have got through cannot deliver
# twice: the in-app inbox is unique by the send's key, and webhook receivers get it as
# `Idempotency-Key` (the documented contract for receivers). Such a send is simply retried.
# SMTP, SendGrid, Postmark and FCM take no key, and Twilio documents none for its Messages
# API (the token is sent anyway): there, an attempt that may have got through is recorded as
# `unknown` and not repeated.
IDEMPOTENT_CHANNELS: Final = frozenset({"webhook", "in_app"})


@dataclass(frozen=True)
class ChannelProviders:
    email: EmailProvider | None = None
    sms: SmsProvider | None = None
    push: PushProvider | None = None
    webhook: WebhookProvider | None = None
    in_app: InAppProvider | None = None

    async def deliver(self, message: OutboundMessage) -> DeliveryReceipt:
        """Hand ``message`` to its channel's provider (``DeliveryError`` when not taken)."""
        if isinstance(message, EmailMessage) and self.email is not None:
            return await self.email.send(message)
        if isinstance(message, SmsMessage) and self.sms is not None:
            return await self.sms.send_sms(message)
        if isinstance(message, PushMessage) and self.push is not None:
            return await self.push.send_push(message)
        if isinstance(message, WebhookMessage) and self.webhook is not None:
            return await self.webhook.send_webhook(message)
        if isinstance(message, InAppMessage) and self.in_app is not None:
            return await self.in_app.send_in_app(message)
        raise PermanentDeliveryError(
            f"no provider is configured for {type(message).__name__}", provider="none"
        )

    def configured(self, channel: Channel) -> bool:
        return getattr(self, channel) is not None
