"""The bench's customers: reply ``think_time`` after the first email, re-post a lost reply.

``wait_for`` only takes events that arrive after it began. A reply that reaches the run
earlier (delivered in the same workflow task as the first send's completion, where the SDK
applies signals before activity results, or while the send is still running) is kept but never
matches, and the run would sit until the one-hour timeout. The bench finds such runs (reply
delivered, no second email, and Temporal shows neither a pending workflow task nor a pending
activity, twice in a row) and posts the reply again, as a customer clicking a second time would.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus

from journeyman.orchestrator.ingest import workflow_id_for

from .mailbox import Mail

CHECK_EVERY = 1.0  # seconds between looks for lost replies
GRACE = 2.0  # a reply posted or delivered this recently is never considered lost


@dataclass
class Replies:
    journey_id: str
    first_subject: str  # the first email's subject starts with this
    think_time: float = 1.0  # seconds between a first email's arrival and the reply
    # customer -> when their first email arrived, and when their last reply was posted
    arrived: dict[str, float] = field(default_factory=dict)
    posted: dict[str, float] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)  # second email received
    reposted: int = 0
    described: int = 0  # Temporal describe calls made to find lost replies
    _seen: int = 0
    _suspects: set[str] = field(default_factory=set)
    _last_check: float = 0.0

    def from_mail(self, arrivals: list[Mail]) -> list[str]:
        """Customers to reply to now (first email ``think_time`` ago); notes second emails.

        ``arrivals`` is the sink's growing list of messages.
        """
        messages = arrivals[self._seen :]
        self._seen += len(messages)
        now = time.monotonic()
        for recipient, subject, _ in messages:
            customer = recipient.split("@", 1)[0]
            if subject.startswith(self.first_subject):
                self.arrived.setdefault(customer, now)
            else:
                self.done.add(customer)
        out = [
            c
            for c, at in self.arrived.items()
            if c not in self.posted and now - at >= self.think_time
        ]
        for customer in out:
            self.posted[customer] = now
        return out

    async def lost(self, conn: asyncpg.Connection, client: Client) -> list[str]:
        """Customers whose reply was delivered but ignored: to post again."""
        now = time.monotonic()
        if now - self._last_check < CHECK_EVERY:
            return []
        self._last_check = now
        waiting = [c for c, at in self.posted.items() if c not in self.done and now - at > GRACE]
        if not waiting:
            self._suspects.clear()
            return []
        delivered = await conn.fetch(
            "SELECT DISTINCT customer_id FROM outbox WHERE journey_id = $1"
            " AND NOT (payload->>'entry')::boolean"
            " AND delivered_at < now() - make_interval(secs => $3)"
            " AND customer_id = any($2::text[])",
            self.journey_id,
            waiting,
            GRACE,
        )
        candidates = [r["customer_id"] for r in delivered]
        self.described += len(candidates)
        idle = await asyncio.gather(*(self._idle(client, c) for c in candidates))
        stuck = [c for c, is_idle in zip(candidates, idle, strict=True) if is_idle]
        again = [c for c in stuck if c in self._suspects and c not in self.done]
        self._suspects = set(stuck) - set(again)
        for customer in again:
            self.posted[customer] = now
        self.reposted += len(again)
        return again

    async def _idle(self, client: Client, customer: str) -> bool:
        handle = client.get_workflow_handle(workflow_id_for(self.journey_id, customer))
        described = await handle.describe()
        raw = described.raw_description
        return (
            described.status == WorkflowExecutionStatus.RUNNING
            and not raw.HasField("pending_workflow_task")
            and not raw.pending_activities
        )
