"""The in-app channel's provider: a send stores the message in the customer's inbox.

Unique by the send's idempotency key, so a retried send finds the first message instead of
adding a second: the in-app channel is safe to retry whatever happened before.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from journeyman.channels import DeliveryReceipt, PermanentDeliveryError
from journeyman.channels.base import InAppMessage

from . import storage


class InboxProvider:
    name = "in_app"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def send_in_app(self, message: InAppMessage) -> DeliveryReceipt:
        try:
            stored = await storage.store(
                self._pool,
                customer_id=message.customer_id,
                send_key=message.idempotency_key,
                title=message.title,
                body=message.body,
                data=message.data,
            )
        except storage.MessageError as exc:
            raise PermanentDeliveryError(str(exc), provider=self.name) from None
        return DeliveryReceipt(
            provider=self.name,
            provider_message_id=str(stored.message.id),
            accepted_at=datetime.now(UTC),
            detail="stored" if stored.created else "already stored",
        )
