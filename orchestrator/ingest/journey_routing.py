"""Routing stored events to journey runs, for many events at once: targets and entries.

The runs of every (journey, customer) pair that a chunk of events concerns are read in one
query; the events are then routed in order in memory, each as if alone: an entry adds its
run at once (so the customer's next events go to it, and the re-entry policy sees it), and
entry caps count the entries made so far. The new runs and the outbox rows are written at
the end, with the chunk's other writes (``writes.write``), where a run that a concurrent
transaction entered first shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic_core import to_jsonable_python

from journeyman.workflows.conditions import matches
from journeyman.workflows.plan import Plan

from . import entry
from .routing import TriggerIndex
from .segment import IncomingEvent
from .writes import NewRun, OutboxRow, Writes


def signal_of(event: IncomingEvent) -> dict[str, Any]:
    """The event as a run receives it (the signal payload): a ``JourneyEvent`` as JSON."""
    assert event.event is not None
    # What JourneyEvent(...).model_dump(mode="json") gives, without building the model.
    signal: dict[str, Any] = to_jsonable_python(
        {
            "message_id": event.message_id,
            "name": event.event,
            "properties": event.properties,
            "occurred_at": event.occurred_at,
            "received_at": None,  # set by the run when it arrives
        }
    )
    return signal


@dataclass
class EntryCaps:
    """Entries of each capped journey, counted under its lock once per transaction, then
    kept up to date as this transaction enters customers."""

    _entered: dict[str, list[int]] = field(default_factory=dict)  # journey -> [total, today]

    async def room(self, conn: asyncpg.Connection, plan: Plan) -> bool:
        cap = plan.entry.cap
        if cap.total is None and cap.per_day is None:
            return True
        counts = self._entered.get(plan.journey_id)
        if counts is None:
            counts = self._entered[plan.journey_id] = list(await entry.entries_so_far(conn, plan))
        return entry.room_for_one(plan, counts[0], counts[1])

    def entered(self, plan: Plan) -> None:
        counts = self._entered.get(plan.journey_id)
        if counts is not None:
            counts[0] += 1
            counts[1] += 1


_RUNS_SQL = (
    "SELECT r.journey_id, r.customer_id, r.workflow_id, r.version, r.status, r.entry_key,"
    " r.updated_at FROM journey_runs r"
    " JOIN unnest($1::text[], $2::text[]) AS p(journey_id, customer_id)"
    " ON r.journey_id = p.journey_id AND r.customer_id = p.customer_id"
    " ORDER BY r.entered_at, r.workflow_id"
)


class Router:
    """Routes a chunk's events in order, into the runs to enter and the outbox rows to write."""

    def __init__(self, index: TriggerIndex, caps: EntryCaps, writes: Writes) -> None:
        self.index = index
        self.caps = caps
        self.now = datetime.now(UTC)
        self.writes = writes  # where the runs entered and the outbox rows go
        self._runs: dict[tuple[str, str], list[entry.Run]] = {}

    def concerns(self, event: IncomingEvent) -> bool:
        return event.type == "track" and bool(event.event and self.index.concerned(event.event))

    async def load(self, conn: asyncpg.Connection, events: Iterable[IncomingEvent]) -> None:
        """Read the runs of the journeys and customers ``events`` concern, in one query."""
        pairs = {
            (journey_id, event.customer_id)
            for event in events
            if self.concerns(event)
            for journey_id in self.index.concerned(event.event or "")
            if (journey_id, event.customer_id) not in self._runs
        }
        if not pairs:
            return
        for pair in pairs:
            self._runs[pair] = []
        journeys, customers = zip(*sorted(pairs), strict=True)
        for row in await conn.fetch(_RUNS_SQL, list(journeys), list(customers)):
            self._runs[(row["journey_id"], row["customer_id"])].append(
                entry.Run(
                    workflow_id=row["workflow_id"],
                    version=row["version"],
                    status=row["status"],
                    entry_key=row["entry_key"],
                    updated_at=row["updated_at"],
                )
            )

    async def route(self, conn: asyncpg.Connection, event: IncomingEvent, event_id: int) -> int:
        """Route one stored event (after ``load`` saw it); the outbox rows it adds."""
        if not self.concerns(event):
            return 0  # most traffic: stored, and nothing more to do
        assert event.event is not None
        signal: dict[str, Any] | None = None
        routed = 0
        for journey_id in self.index.concerned(event.event):
            plan = self.index.active.get(journey_id)  # None: paused, archived, or older only
            runs = self._runs[(journey_id, event.customer_id)]
            targets = [
                (run.workflow_id, run.version, False)
                for run in entry.targets(plan, runs, event.properties)
            ]
            if (
                plan is not None
                and plan.entry.match is not None
                and matches(plan.entry.match, event.event, event.properties)
                and entry.may_enter(plan, runs, event.properties, self.now)
                and await self.caps.room(conn, plan)
            ):
                targets.append((self._enter(plan, event, runs), plan.version, True))
            for workflow_id, version, is_entry in targets:
                signal = signal or signal_of(event)
                self.writes.outbox.append(
                    OutboxRow(
                        event_id=event_id,
                        journey_id=journey_id,
                        version=version,
                        customer_id=event.customer_id,
                        workflow_id=workflow_id,
                        payload={"entry": is_entry, "event": signal},
                    )
                )
                routed += 1
        return routed

    def _enter(self, plan: Plan, event: IncomingEvent, runs: list[entry.Run]) -> str:
        # The run exists from this moment, so the customer's next events route to it even
        # before the workflow has started; it is pinned to today's version.
        workflow_id = entry.workflow_id_for(plan.journey_id, event.customer_id, len(runs) + 1)
        key = entry.entry_key(plan, event.properties)
        runs.append(entry.Run(workflow_id, plan.version, "entering", key, self.now))
        self.writes.runs.append(
            NewRun(plan.journey_id, event.customer_id, plan.version, workflow_id, key)
        )
        self.caps.entered(plan)
        return workflow_id
