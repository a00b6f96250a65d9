"""Live segment membership: re-evaluated for a customer as their events are stored.

Only the segments an event can change are evaluated: one that counts ``Order Completed``
when such an order arrives, one that reads traits on ``identify``, one that reads metrics on
activity that can move a metric it reads. A batch's customers are evaluated together, at the
end of its transaction (``reevaluate_many``: a few statements for all of them). Entering or
leaving is written to ``segment_memberships`` and stored as the engine events
``Segment Entered`` / ``Segment Exited`` in the same transaction, routed like tracked
events, so journeys react at once (entry, exit, ``wait_for``), with no polling.

What changes with time alone (a ``within`` window sliding, days since the last order) is
caught by the scheduled sweep, which re-evaluates time-dependent segments for everyone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from journeyman.orchestrator.storage.behaviour import MAX_EVENTS_PER_NAME
from journeyman.workflows import expressions
from journeyman.workflows.expressions import Context, Expression, Needs, StoredEvent
from journeyman.workflows.expressions.syntax import DAYS_SINCE_METRICS

from . import metrics
from .definitions import SegmentDefinition
from .events import ENGINE_SOURCE, SEGMENT_ENTERED, SEGMENT_EXITED, SEGMENT_PROPERTY


@dataclass(frozen=True)
class LiveSegment:
    """A deployed segment, parsed once, with what its condition reads."""

    definition: SegmentDefinition
    tree: Expression
    needs: Needs

    @property
    def segment_id(self) -> str:
        return self.definition.segment_id

    @property
    def reads_traits(self) -> bool:
        return bool(self.needs.traits)

    @property
    def reads_metrics(self) -> bool:
        return bool(_metrics_read(self.needs))

    @property
    def time_dependent(self) -> bool:
        """Whether time passing alone can change the answer (then the sweep re-checks it)."""
        return bool(self.needs.events) or self.reads_metrics

    def reads_any(self, moved: frozenset[str]) -> bool:
        """Whether its condition reads one of these metrics, or a ``days_since_*`` one (whose
        value moves with time: re-evaluated at every activity, as before)."""
        read = _metrics_read(self.needs)
        return not read.isdisjoint(moved) or not read.isdisjoint(DAYS_SINCE_METRICS)


def _metrics_read(needs: Needs) -> frozenset[str]:
    return frozenset(getattr(needs, "metrics", frozenset()))


@dataclass(frozen=True)
class SegmentIndex:
    """The deployed segments, and which of them an event can change."""

    segments: tuple[LiveSegment, ...] = ()
    _by_event: dict[str, tuple[LiveSegment, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, definitions: Iterable[SegmentDefinition]) -> SegmentIndex:
        live = []
        for definition in sorted(definitions, key=lambda d: d.segment_id):
            tree = expressions.parse(definition.condition)
            live.append(LiveSegment(definition, tree, expressions.needs(tree)))
        by_event: dict[str, list[LiveSegment]] = {}
        for segment in live:
            for name in segment.needs.events:
                by_event.setdefault(name, []).append(segment)
        return cls(tuple(live), {name: tuple(found) for name, found in by_event.items()})

    def __len__(self) -> int:
        return len(self.segments)

    def affected_by(
        self,
        *,
        kind: str,
        name: str | None,
        engine: bool,
        moved: frozenset[str] | None = None,
    ) -> set[str]:
        """Ids of the segments a stored message of this kind and name can change.

        ``moved`` names the metrics the customer's activity may have changed (what
        ``metrics.fold_events`` reports); a segment that reads metrics is then re-evaluated
        only if it reads one of them. None: any of them may have.
        """
        found: set[str] = set()
        if not self.segments:
            return found
        if kind == "identify":
            found.update(s.segment_id for s in self.segments if s.reads_traits)
        if kind == "track" and name is not None:
            found.update(s.segment_id for s in self._by_event.get(name, ()))
        if not engine or kind == "track":
            # Activity moves metrics (and an engine recency change is a metrics change).
            found.update(
                s.segment_id
                for s in self.segments
                if s.reads_metrics and (moved is None or s.reads_any(moved))
            )
        return found

    def every_id(self) -> set[str]:
        return {segment.segment_id for segment in self.segments}

    def pick(self, ids: Iterable[str]) -> list[LiveSegment]:
        wanted = set(ids)
        return [segment for segment in self.segments if segment.segment_id in wanted]


@dataclass(frozen=True)
class MembershipChange:
    segment: SegmentDefinition
    customer_id: str
    change: Literal["entered", "exited"]

    @property
    def event_name(self) -> str:
        return SEGMENT_ENTERED if self.change == "entered" else SEGMENT_EXITED


async def reevaluate(
    conn: asyncpg.Connection,
    *,
    customer_id: str,
    segments: Sequence[LiveSegment],
    now: datetime,
) -> list[MembershipChange]:
    """Evaluate ``segments`` for one customer and record who entered and who left."""
    return await reevaluate_many(conn, {customer_id: segments}, now=now)


async def reevaluate_many(
    conn: asyncpg.Connection,
    wanted: Mapping[str, Sequence[LiveSegment]],
    *,
    now: datetime,
) -> list[MembershipChange]:
    """Evaluate each customer's segments and record who entered and who left, for all the
    customers in a few statements: what the conditions read is loaded for all of them at
    once (``load_contexts``), the changes are written at once. Changes come in customer
    order, then segment order."""
    wanted = {customer: segments for customer, segments in wanted.items() if segments}
    if not wanted:
        return []
    needs = {
        customer: expressions.merge_needs(segment.needs for segment in segments)
        for customer, segments in wanted.items()
    }
    contexts = await load_contexts(conn, needs, now=now)
    current = {
        (row["customer_id"], row["segment_id"])
        for row in await conn.fetch(
            "SELECT m.customer_id, m.segment_id FROM unnest($1::text[]) AS c(customer_id)"
            " JOIN segment_memberships m USING (customer_id)"
            " WHERE m.segment_id = ANY($2::text[])",
            sorted(wanted),
            sorted({s.segment_id for segments in wanted.values() for s in segments}),
        )
    }
    changes: list[MembershipChange] = []
    for customer_id in sorted(wanted):
        context = contexts[customer_id]
        for segment in wanted[customer_id]:
            holds = expressions.evaluate(segment.tree, context)
            member = (customer_id, segment.segment_id) in current
            if holds and not member:
                changes.append(MembershipChange(segment.definition, customer_id, "entered"))
            elif member and not holds:
                changes.append(MembershipChange(segment.definition, customer_id, "exited"))
    entered = [(c.segment.segment_id, c.customer_id) for c in changes if c.change == "entered"]
    exited = [(c.segment.segment_id, c.customer_id) for c in changes if c.change == "exited"]
    if entered:
        await conn.execute(
            "INSERT INTO segment_memberships (segment_id, customer_id, entered_at)"
            " SELECT s, c, $3 FROM unnest($1::text[], $2::text[]) AS x(s, c)"
            " ON CONFLICT DO NOTHING",
            [s for s, _ in entered],
            [c for _, c in entered],
            now,
        )
    if exited:
        await conn.execute(
            "DELETE FROM segment_memberships m USING unnest($1::text[], $2::text[]) AS x(s, c)"
            " WHERE m.segment_id = x.s AND m.customer_id = x.c",
            [s for s, _ in exited],
            [c for _, c in exited],
        )
    return changes


async def load_contexts(
    conn: asyncpg.Connection, needs: Mapping[str, Needs], *, now: datetime
) -> dict[str, Context]:
    """``behaviour.load_context`` (with no triggering event) for many customers, each with
    what their conditions read, in at most three round trips: traits, event histories, and
    metrics for those whose conditions read any."""
    customers = sorted(needs)
    traits = {
        row["customer_id"]: row["traits"]
        for row in await conn.fetch(
            "SELECT p.customer_id, p.traits FROM unnest($1::text[]) AS c(customer_id)"
            " JOIN profiles p USING (customer_id)",
            customers,
        )
    }
    histories: dict[str, dict[str, list[StoredEvent]]] = {
        customer: {name: [] for name in needs[customer].events} for customer in customers
    }
    wanted = [
        (customer, name, None if within is None else now - timedelta(seconds=within))
        for customer in customers
        for name, within in needs[customer].events.items()
    ]
    if wanted:
        # Each (customer, name) keeps its own window and its own cap, as load_context's do.
        rows = await conn.fetch(
            "SELECT w.customer_id, w.name, e.properties, e.occurred_at"
            " FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS w(customer_id, name, since)"
            " CROSS JOIN LATERAL ("
            "   SELECT properties, occurred_at FROM events"
            "   WHERE customer_id = w.customer_id AND type = 'track' AND event = w.name"
            "     AND (w.since IS NULL OR occurred_at > w.since)"
            "   ORDER BY occurred_at DESC, id DESC LIMIT $4"
            " ) AS e",
            [customer for customer, _, _ in wanted],
            [name for _, name, _ in wanted],
            [since for _, _, since in wanted],
            MAX_EVENTS_PER_NAME,
        )
        for row in rows:
            properties = row["properties"]
            histories[row["customer_id"]][row["name"]].append(
                StoredEvent(
                    name=row["name"],
                    properties=properties if isinstance(properties, Mapping) else {},
                    occurred_at=row["occurred_at"],
                )
            )
    reading = [customer for customer in customers if needs[customer].metrics]
    loaded = await metrics.load_many(conn, reading) if reading else {}
    contexts = {}
    for customer in customers:
        found = traits.get(customer)
        contexts[customer] = Context(
            traits=found if isinstance(found, Mapping) else {},
            event={},
            history=histories[customer],
            now=now,
            metrics=(
                metrics.condition_values(loaded.get(customer), needs[customer].metrics)
                if needs[customer].metrics
                else {}
            ),
        )
    return contexts


def change_event_fields(change: MembershipChange) -> dict[str, object]:
    """The fields of the engine event that records a change (an ``IncomingEvent``'s)."""
    return {
        "message_id": f"segment:{uuid.uuid4()}",
        "type": "track",
        "customer_id": change.customer_id,
        "event": change.event_name,
        "properties": {
            SEGMENT_PROPERTY: change.segment.segment_id,
            "name": change.segment.name,
            "kind": change.segment.kind,
        },
        "traits": {},
        "context": {"source": ENGINE_SOURCE},
    }
