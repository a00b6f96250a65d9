"""Entering a customer into a journey by API call, under its re-entry policy and caps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from journeyman.orchestrator.customers import identity
from journeyman.orchestrator.storage.outbox import notify_outbox
from journeyman.workflows.plan import Plan

from . import entry
from .chunk import store_event
from .journey_routing import signal_of
from .segment import IncomingEvent
from .writes import OutboxRow, insert_outbox

# The event an API entry is stored as: the run's entry event, with the caller's properties.
API_ENTRY_EVENT = "Journey Entry Requested"


@dataclass(frozen=True)
class Admission:
    entered: bool
    workflow_id: str | None
    reason: str | None = None


async def admit(
    pool: asyncpg.Pool,
    *,
    plan: Plan,
    customer_id: str,
    properties: dict[str, Any],
    message_id: str,
) -> Admission:
    """Enter a customer by API call, under the journey's re-entry policy and caps.

    The request is stored as an event (its message id dedupes retries) with its outbox row in
    the same transaction, like any other entry, so nothing accepted is lost.
    """
    async with pool.acquire() as conn, conn.transaction():
        customer_id = await identity.canonical(conn, customer_id)
        event = IncomingEvent(
            message_id=message_id,
            type="track",
            customer_id=customer_id,
            event=API_ENTRY_EVENT,
            properties=properties,
            traits={},
            context={"journey_id": plan.journey_id},
            occurred_at=datetime.now(UTC),
        )
        event_id = await store_event(conn, event)
        runs = await entry.customer_runs(conn, plan.journey_id, customer_id)
        if event_id is None:
            return Admission(False, None, "duplicate message id: this request was already made")
        if not entry.may_enter(plan, runs, properties, datetime.now(UTC)):
            return Admission(False, None, f"re-entry policy '{plan.entry.reentry.mode}' says no")
        if not await entry.under_cap(conn, plan):
            return Admission(False, None, "the journey's entry cap is reached")
        workflow_id = await entry.enter(conn, plan, customer_id, runs, properties)
        if workflow_id is None:
            return Admission(False, None, "a concurrent request entered this customer first")
        await insert_outbox(
            conn,
            [
                OutboxRow(
                    event_id=event_id,
                    journey_id=plan.journey_id,
                    version=plan.version,
                    customer_id=customer_id,
                    workflow_id=workflow_id,
                    payload={"entry": True, "event": signal_of(event)},
                )
            ],
        )
        await notify_outbox(conn)
    return Admission(True, workflow_id)
