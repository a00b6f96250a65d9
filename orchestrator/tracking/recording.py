"""Opens, clicks and subscription changes, recorded as the customer's events through ingest.

They are customer activity (``context.channel`` is the message's channel), stored, counted in
the customer's metrics and routed to journeys like any tracked event, so a journey can
``wait_for: {event: Link Clicked}`` or exit on ``Unsubscribed``.

Message ids are deterministic, so a pixel fetched twice or a link clicked again counts once:
``Email Opened`` once per message, ``Link Clicked`` once per message and URL (a click also
records the open, which image blocking often hides), and each change of a subscription once
(a retried one-click request does not record a second ``Unsubscribed``).

Nothing is recorded for a customer erased after the link was made: the link still answers,
but the events would bring back the data the erasure removed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg

from journeyman.orchestrator.customers import erasure
from journeyman.orchestrator.customers.settings import CustomerDataSettings
from journeyman.orchestrator.ingest import IncomingEvent, IngestResult, TriggerIndex, ingest

from . import consent
from .links import LinkToken

EMAIL_OPENED: Final = "Email Opened"
LINK_CLICKED: Final = "Link Clicked"
UNSUBSCRIBED: Final = "Unsubscribed"
SUBSCRIBED: Final = "Subscribed"


@dataclass(frozen=True)
class Delivery:
    """The ledger row of the message a link was in (what the events say about it)."""

    send_key: str
    journey_id: str | None
    step_id: str | None
    channel: str
    recipient: str | None

    @property
    def properties(self) -> dict[str, Any]:
        """What every event about this message carries (what is known of it)."""
        found: dict[str, Any] = {"send_key": self.send_key}
        if self.journey_id is not None and self.step_id is not None:
            found.update(journey_id=self.journey_id, step_id=self.step_id)
        return found


async def delivery(conn: asyncpg.Connection | asyncpg.Pool, send_key: str) -> Delivery:
    """The message's ledger row; a link whose row is gone still names its send key."""
    row = await conn.fetchrow(
        "SELECT journey_id, step_id, channel, recipient FROM deliveries WHERE send_key = $1",
        send_key,
    )
    if row is None:
        return Delivery(send_key, None, None, "email", None)
    return Delivery(send_key, row["journey_id"], row["step_id"], row["channel"], row["recipient"])


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:40]


async def _erased_since(conn: asyncpg.Connection | asyncpg.Pool, token: LinkToken) -> bool:
    when = await erasure.erased_at(conn, token.customer_id)
    return when is not None and when >= token.issued_at


def _event(
    *,
    message_id: str,
    name: str,
    customer_id: str,
    properties: dict[str, Any],
    channel: str,
    now: datetime,
) -> IncomingEvent:
    return IncomingEvent(
        message_id=message_id,
        type="track",
        customer_id=customer_id,
        user_id=customer_id,
        event=name,
        properties=properties,
        traits={},
        context={"channel": channel},
        occurred_at=now,
    )


async def record_open(
    pool: asyncpg.Pool,
    token: LinkToken,
    *,
    index: TriggerIndex,
    settings: CustomerDataSettings | None = None,
    now: datetime | None = None,
) -> IngestResult | None:
    """Record ``Email Opened`` for an open token; None when nothing is recorded."""
    return await _record(pool, token, index=index, settings=settings, now=now)


async def record_click(
    pool: asyncpg.Pool,
    token: LinkToken,
    *,
    index: TriggerIndex,
    settings: CustomerDataSettings | None = None,
    now: datetime | None = None,
) -> IngestResult | None:
    """Record ``Link Clicked`` (and the open it implies) for a click token."""
    return await _record(pool, token, index=index, settings=settings, now=now)


async def _record(
    pool: asyncpg.Pool,
    token: LinkToken,
    *,
    index: TriggerIndex,
    settings: CustomerDataSettings | None,
    now: datetime | None,
) -> IngestResult | None:
    moment = now or datetime.now(UTC)
    async with pool.acquire() as conn:
        if token.expired(moment) or await _erased_since(conn, token):
            return None
        sent = await delivery(conn, token.send_key)
    opened = _event(
        message_id=f"opened:{_digest(token.send_key)}",
        name=EMAIL_OPENED,
        customer_id=token.customer_id,
        properties=sent.properties,
        channel=sent.channel,
        now=moment,
    )
    events = [opened]
    if token.kind == "click":
        assert token.url is not None
        events.append(
            _event(
                message_id=f"clicked:{_digest(token.send_key, token.url)}",
                name=LINK_CLICKED,
                customer_id=token.customer_id,
                properties={**sent.properties, "url": token.url},
                channel=sent.channel,
                now=moment,
            )
        )
    return await ingest(pool, events=events, index=index, settings=settings)


async def change_subscription(
    pool: asyncpg.Pool,
    token: LinkToken,
    *,
    group: consent.SubscriptionGroup,
    subscribed: bool,
    source: consent.PreferenceSource,
    index: TriggerIndex,
    settings: CustomerDataSettings | None = None,
    now: datetime | None = None,
) -> bool:
    """Record the choice of the customer an unsubscribe token names; True if it changed.

    The event (``Unsubscribed`` or ``Subscribed``) is committed first, under an id made from
    the customer, the group and how often their choice changed before; the choice is then
    stored. A request retried after a failure in between records the same id again (a
    duplicate, skipped) and then stores the choice, so the event is never lost nor doubled.
    """
    moment = now or datetime.now(UTC)
    async with pool.acquire() as conn:
        if await _erased_since(conn, token):
            return False
        sent = await delivery(conn, token.send_key)
        standing = next(
            p
            for p in await consent.preferences(
                conn, customer_id=token.customer_id, groups=consent.SubscriptionGroups([group])
            )
        )
    if standing.subscribed != subscribed:
        change = _digest(standing.customer_id, group.key, str(standing.changes))
        event = _event(
            message_id=f"subscription:{change}",
            name=SUBSCRIBED if subscribed else UNSUBSCRIBED,
            customer_id=standing.customer_id,
            properties={
                **sent.properties,
                "group": group.key,
                "channel": group.channel,
                "source": source,
            },
            channel=sent.channel,
            now=moment,
        )
        await ingest(pool, events=[event], index=index, settings=settings)
    # The address the message went to is suppressed (or freed) with the choice when the
    # group is on the message's channel; another channel's address is not known here.
    address = sent.recipient if sent.channel == group.channel else None
    async with pool.acquire() as conn, conn.transaction():
        return await consent.set_subscription(
            conn,
            customer_id=standing.customer_id,
            group=group,
            subscribed=subscribed,
            source=source,
            address=address,
            send_key=token.send_key,
        )
