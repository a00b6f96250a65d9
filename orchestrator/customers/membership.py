"""Live segment membership: re-evaluated for a customer as their events are stored.

Only the segments an event can change are evaluated: one that counts ``Order Completed``
when such an order arrives, one that reads traits on ``identify``, one that reads metrics on
any activity. Entering or leaving is written to ``segment_memberships`` and stored as the
engine events ``Segment Entered`` / ``Segment Exited`` in the same transaction, routed like
tracked events, so journeys react at once (entry, exit, ``wait_for``), with no polling.

What changes with time alone (a ``within`` window sliding, days since the last order) is
caught by the scheduled sweep, which re-evaluates time-dependent segments for everyone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import asyncpg

from journeyman.orchestrator.storage.behaviour import load_context
from journeyman.workflows import expressions
from journeyman.workflows.expressions import Expression, Needs

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

    def affected_by(self, *, kind: str, name: str | None, engine: bool) -> set[str]:
        """Ids of the segments a stored message of this kind and name can change."""
        found: set[str] = set()
        if kind == "identify":
            found.update(s.segment_id for s in self.segments if s.reads_traits)
        if kind == "track" and name is not None:
            found.update(s.segment_id for s in self._by_event.get(name, ()))
        if not engine or kind == "track":
            # Activity moves metrics (and an engine recency change is a metrics change).
            found.update(s.segment_id for s in self.segments if s.reads_metrics)
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
    if not segments:
        return []
    needs = expressions.merge_needs(segment.needs for segment in segments)
    context = await load_context(conn, customer_id=customer_id, needs=needs, event={}, now=now)
    ids = [segment.segment_id for segment in segments]
    current = {
        row["segment_id"]
        for row in await conn.fetch(
            "SELECT segment_id FROM segment_memberships"
            " WHERE customer_id = $1 AND segment_id = ANY($2::text[])",
            customer_id,
            ids,
        )
    }
    changes: list[MembershipChange] = []
    for segment in segments:
        holds = expressions.evaluate(segment.tree, context)
        member = segment.segment_id in current
        if holds and not member:
            await conn.execute(
                "INSERT INTO segment_memberships (segment_id, customer_id, entered_at)"
                " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                segment.segment_id,
                customer_id,
                now,
            )
            changes.append(MembershipChange(segment.definition, customer_id, "entered"))
        elif member and not holds:
            await conn.execute(
                "DELETE FROM segment_memberships WHERE segment_id = $1 AND customer_id = $2",
                segment.segment_id,
                customer_id,
            )
            changes.append(MembershipChange(segment.definition, customer_id, "exited"))
    return changes


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
