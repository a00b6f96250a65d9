"""The delivery ledger: claim a send before the provider call, so nothing is delivered twice.

States: ``sending`` (claimed, provider call under way), ``sent``, ``failed`` and ``skipped``
(with a reason), and ``unknown`` (a previous attempt may have reached the provider and the
provider takes no idempotency key, so it is not sent again).

A claim is owned by one attempt at a time, named by the row's ``attempts`` count. The owner
marks the hand-over to the provider in its own commit just before the call: a claim left
``sending`` without that mark never reached the provider, so the next attempt takes it over
and sends; with the mark, it may have, and only an idempotent provider is tried again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from .delivery_states import entered_from

FinalStatus = Literal["sent", "failed", "skipped", "unknown", "capped", "suppressed"]


@dataclass(frozen=True)
class ClaimResult:
    claimed: bool  # True: this attempt owns the send and must finish it
    status: str  # the row's status when it was not claimed
    attempts: int  # this attempt's number: what it owns the claim by
    # A new row: this send was never tried before (frequency caps count it from here).
    fresh: bool = True
    # An earlier attempt handed the message to its provider (the claim was not taken over).
    handed_over: bool = False


async def claim_send(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    send_key: str,
    journey_id: str,
    version: str,
    customer_id: str,
    step_id: str,
    channel: str,
    at: datetime | None = None,
) -> ClaimResult:
    """Claim a send key; an existing row means an earlier attempt got this far.

    An earlier attempt's claim still ``sending`` and never handed over is taken over: that
    attempt died before the provider call, and the bumped ``attempts`` stops it from
    handing over should it still be alive. ``at`` is when the run asked for the send (its
    workflow time): frequency caps and throttles count in the run's time, which the
    time-skipping test server moves.
    """
    row = await conn.fetchrow(
        "INSERT INTO deliveries"
        " (send_key, journey_id, version, customer_id, step_id, channel, status, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'sending', coalesce($7, now()))"
        " ON CONFLICT (send_key) DO UPDATE SET attempts = deliveries.attempts + 1"
        " RETURNING (xmax = 0) AS inserted, status, attempts, handed_over_at IS NOT NULL AS handed",
        send_key,
        journey_id,
        version,
        customer_id,
        step_id,
        channel,
        at,
    )
    assert row is not None
    inserted, status, handed = bool(row["inserted"]), str(row["status"]), bool(row["handed"])
    return ClaimResult(
        claimed=inserted or (status == "sending" and not handed),
        status=status,
        attempts=row["attempts"],
        fresh=inserted,
        handed_over=handed,
    )


async def hand_over(
    conn: asyncpg.Connection | asyncpg.Pool, *, send_key: str, attempt: int
) -> bool:
    """Mark the claim as handed to the provider, committed before the provider is called.

    False when a later attempt has taken the claim over (this one was presumed dead): the
    caller must then not call the provider. An idempotent provider's retry marks it again.
    """
    marked = await conn.fetchval(
        "UPDATE deliveries SET handed_over_at = now(), updated_at = now()"
        " WHERE send_key = $1 AND attempts = $2 AND status = 'sending' RETURNING true",
        send_key,
        attempt,
    )
    return bool(marked)


async def release_send(
    conn: asyncpg.Connection | asyncpg.Pool, *, send_key: str, attempt: int | None = None
) -> None:
    """Give a claim back when the provider surely did not get the message, so a retry may send.

    With ``attempt``, only while that attempt still owns the claim."""
    await conn.execute(
        "DELETE FROM deliveries WHERE send_key = $1 AND status = 'sending'"
        " AND ($2::integer IS NULL OR attempts = $2)",
        send_key,
        attempt,
    )


async def finish_send(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    send_key: str,
    status: FinalStatus,
    reason: str | None = None,
    recipient: str | None = None,
    subject: str | None = None,
    provider_message_id: str | None = None,
) -> None:
    # Guarded: a provider webhook may already have moved the row on (delivered, opened)
    # before the send path records its own answer; states never move back.
    await conn.execute(
        "UPDATE deliveries SET status = CASE WHEN status = ANY($7::text[]) THEN $2"
        " ELSE status END, reason = coalesce($3, reason), recipient = coalesce($4, recipient),"
        " subject = coalesce($5, subject),"
        " provider_message_id = coalesce($6, provider_message_id), updated_at = now()"
        " WHERE send_key = $1",
        send_key,
        status,
        reason,
        recipient,
        subject,
        provider_message_id,
        entered_from(status),
    )
