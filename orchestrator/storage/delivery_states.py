"""Delivery states after the send, and recording what the providers report about a message.

A delivery's ``status`` in the ledger is one of:

- in progress, only ever moving forward: ``sending`` (claimed, provider call under way),
  ``unknown`` (an earlier attempt may have reached the provider), ``queued`` (the provider
  has it), ``sent`` (handed on: accepted by the provider's API, or passed to the carrier),
  ``delivered``, ``opened``, ``clicked``;
- final: ``failed`` (with the reason), ``bounced``, ``complained``, and the suppressions,
  which never reached the provider or were stopped by it under a rule: ``suppressed`` (with
  the rule), ``skipped`` and ``capped`` (a journey's rules: quiet hours, no address, a
  frequency cap).

The rules (``may_move``): a progress state replaces an earlier one, never a later one (a late
``delivered`` after ``opened`` changes nothing); ``failed`` and the suppressions end a message
not yet delivered; ``bounced`` one not yet opened (receiving servers accept mail and bounce it
later); ``complained`` any message still in progress. Final states never change.

Provider events are recorded once each in ``delivery_events`` (``record_event``): a retried
webhook is a no-op. An event for a message the ledger cannot place yet (it came before the
send path stored the provider's id) waits there until ``attach_waiting_events``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, get_args

import asyncpg

State = Literal[
    "sending",
    "unknown",
    "queued",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "failed",
    "bounced",
    "complained",
    "suppressed",
    "skipped",
    "capped",
]
STATES: Final[tuple[State, ...]] = get_args(State)

# In order: each may replace the ones before it. sending and unknown are the send path's own.
PROGRESS: Final[tuple[State, ...]] = (
    "sending",
    "unknown",
    "queued",
    "sent",
    "delivered",
    "opened",
    "clicked",
)
SUPPRESSIONS: Final = frozenset[State]({"suppressed", "skipped", "capped"})
FINAL: Final = frozenset[State]({"failed", "bounced", "complained"}) | SUPPRESSIONS

# Messages the customer may have received: what frequency caps and throttles should count.
MAY_HAVE_REACHED_CUSTOMER: Final[tuple[State, ...]] = (*PROGRESS, "complained")

# When the provider first reported each fact.
TIMESTAMP_COLUMNS: Final[dict[State, str]] = {
    "delivered": "delivered_at",
    "opened": "opened_at",
    "clicked": "clicked_at",
    "bounced": "bounced_at",
    "complained": "complained_at",
}

_RANK: Final = {state: rank for rank, state in enumerate(PROGRESS)}
# The furthest progress state each final state may still replace.
_ENDS_UP_TO: Final[dict[State, State]] = {
    "failed": "sent",
    "suppressed": "sent",
    "skipped": "sent",
    "capped": "sent",
    "bounced": "delivered",
    "complained": "clicked",
}
# The longest reason kept; providers' texts are short, a long one is cut to stay readable.
MAX_REASON = 300


def may_move(current: str, new: str) -> bool:
    """Whether a delivery in state ``current`` may move to ``new``."""
    if current not in _RANK or new == current:
        return False  # final states never change
    if new in _RANK:
        return _RANK[new] > _RANK[current]
    if new in _ENDS_UP_TO:
        return _RANK[current] <= _RANK[_ENDS_UP_TO[new]]
    raise ValueError(f"unknown delivery state {new!r}; expected one of {list(STATES)}")


def entered_from(new: str) -> list[str]:
    """The states a delivery may be in to move to ``new``: for a guarded ``UPDATE``."""
    return [state for state in STATES if may_move(state, new)]


def short_reason(text: str | None, *, address: str | None = None) -> str | None:
    """A provider's reason, one line, cut to ``MAX_REASON``, with ``address`` masked.

    Bounce texts often quote the recipient's address; the ledger's reason is not personal
    data (erasure does not reach it), so the address is replaced by ``<recipient>``.
    """
    if not text:
        return None
    text = " ".join(text.split())
    if address:
        text = re.sub(re.escape(address), "<recipient>", text, flags=re.IGNORECASE)
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


@dataclass(frozen=True)
class DeliveryEvent:
    """One thing a provider reported about one message.

    ``event_id`` is unique per provider (SendGrid's ``sg_event_id``); ``state`` is None for
    events that are recorded without changing the delivery (SendGrid's ``deferred``).
    ``send_key`` is the delivery, when the caller found it; else ``provider_message_id``
    lets ``attach_waiting_events`` place the event later.
    """

    provider: str
    event_id: str
    event: str
    state: State | None
    occurred_at: datetime
    payload_sha256: str
    send_key: str | None = None
    provider_message_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Recorded:
    """What recording one event did.

    ``duplicate``: the event was recorded before and changed nothing now. ``previous`` and
    ``status`` are the delivery's state before and after (None when no delivery matched).
    """

    duplicate: bool
    send_key: str | None = None
    previous: str | None = None
    status: str | None = None
    customer_id: str | None = None
    channel: str | None = None
    recipient: str | None = None

    @property
    def matched(self) -> bool:
        return self.status is not None

    @property
    def moved(self) -> bool:
        return self.status is not None and self.status != self.previous


async def send_key_for_message_digest(conn: asyncpg.Connection, digest: str) -> str | None:
    """The delivery whose ``Message-ID`` local part is ``digest`` (see ``message_id_for``)."""
    key: str | None = await conn.fetchval(
        "SELECT send_key FROM deliveries WHERE delivery_message_digest(send_key) = $1", digest
    )
    return key


async def send_key_for_provider_id(
    conn: asyncpg.Connection, provider_message_id: str
) -> str | None:
    """The delivery the provider knows as ``provider_message_id``."""
    key: str | None = await conn.fetchval(
        "SELECT send_key FROM deliveries WHERE provider_message_id = $1 LIMIT 1",
        provider_message_id,
    )
    return key


async def apply_state(
    conn: asyncpg.Connection,
    *,
    send_key: str,
    state: State,
    occurred_at: datetime,
    reason: str | None = None,
) -> Recorded:
    """Move the delivery to ``state`` when the rules allow, and note when it happened.

    The fact's timestamp column (``delivered_at``...) keeps the earliest report even when the
    state does not move: a late ``delivered`` after ``opened`` still dates the delivery.
    """
    column = TIMESTAMP_COLUMNS.get(state)
    # The column name comes from the fixed table above, never from input.
    stamp = f", {column} = least(d.{column}, $5)" if column else ""
    stamped = (occurred_at,) if column else ()
    row = await conn.fetchrow(
        "WITH previous AS ("
        "  SELECT send_key, status FROM deliveries WHERE send_key = $1 FOR UPDATE)"
        " UPDATE deliveries AS d SET"
        "  status = CASE WHEN d.status = ANY($3::text[]) THEN $2 ELSE d.status END,"
        "  reason = CASE WHEN d.status = ANY($3::text[]) THEN $4 ELSE d.reason END,"
        f"  updated_at = now(){stamp}"
        " FROM previous WHERE d.send_key = previous.send_key"
        " RETURNING previous.status AS previous, d.status, d.customer_id, d.channel,"
        "  d.recipient",
        send_key,
        state,
        entered_from(state),
        reason if state in FINAL else None,
        *stamped,
    )
    if row is None:
        return Recorded(duplicate=False, send_key=send_key)
    return Recorded(
        duplicate=False,
        send_key=send_key,
        previous=row["previous"],
        status=row["status"],
        customer_id=row["customer_id"],
        channel=row["channel"],
        recipient=row["recipient"],
    )


async def record_event(conn: asyncpg.Connection, event: DeliveryEvent) -> Recorded:
    """Record ``event`` once and apply its state to its delivery, if one matched.

    Call it inside a transaction: the event row and the state change commit together, so a
    retried webhook after a failure applies the event exactly once.
    """
    inserted = await conn.fetchval(
        "INSERT INTO delivery_events (provider, event_id, send_key, provider_message_id,"
        " event, state, reason, occurred_at, payload_sha256)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (provider, event_id) DO NOTHING RETURNING true",
        event.provider,
        event.event_id,
        event.send_key,
        event.provider_message_id,
        event.event,
        event.state,
        event.reason,
        event.occurred_at,
        event.payload_sha256,
    )
    if not inserted:
        return Recorded(duplicate=True, send_key=event.send_key)
    if event.send_key is None:
        return Recorded(duplicate=False)
    if event.state is None:
        row = await conn.fetchrow(
            "SELECT status, customer_id, channel, recipient FROM deliveries WHERE send_key = $1",
            event.send_key,
        )
        if row is None:
            return Recorded(duplicate=False, send_key=event.send_key)
        return Recorded(
            duplicate=False,
            send_key=event.send_key,
            previous=row["status"],
            status=row["status"],
            customer_id=row["customer_id"],
            channel=row["channel"],
            recipient=row["recipient"],
        )
    return await apply_state(
        conn,
        send_key=event.send_key,
        state=event.state,
        occurred_at=event.occurred_at,
        reason=event.reason,
    )


async def attach_waiting_events(
    conn: asyncpg.Connection, *, send_key: str, provider_message_id: str
) -> int:
    """Give the delivery the events that arrived before its provider id was recorded.

    The send path calls it, in a transaction, right after it stores ``provider_message_id``:
    a provider may report on a message before its API answer reaches the ledger. The events
    are applied in the order they happened; returns how many were attached.
    """
    rows = await conn.fetch(
        "UPDATE delivery_events SET send_key = $1"
        " WHERE send_key IS NULL AND provider_message_id = $2"
        " RETURNING state, reason, occurred_at",
        send_key,
        provider_message_id,
    )
    for row in sorted(rows, key=lambda r: r["occurred_at"]):
        if row["state"] is not None:
            await apply_state(
                conn,
                send_key=send_key,
                state=row["state"],
                occurred_at=row["occurred_at"],
                reason=row["reason"],
            )
    return len(rows)
