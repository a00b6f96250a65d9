"""Deployed segments and personas: one current definition per id, with a content-hash version.

Unlike a journey, a segment keeps no old versions: membership is re-evaluated against the
current definition, so a deploy replaces the definition and the version, and marks the
membership to be filled again for it. Every change is announced on the deploy channel, so
API and ingest processes reload what they evaluate. Archiving stops a segment (until its
file is deployed again) and empties its membership.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import asyncpg

from journeyman.orchestrator.customers.definitions import SegmentDefinition

from .journeys import DEPLOY_CHANNEL

# created: a new id; changed: a new definition; unchanged: the same version, nothing done;
# restored: an archived segment deployed again (with this definition).
DeployOutcome = Literal["created", "changed", "unchanged", "restored"]
SegmentStatus = Literal["active", "archived"]


@dataclass(frozen=True)
class SegmentDeployResult:
    segment_id: str
    version: str
    outcome: DeployOutcome


@dataclass(frozen=True)
class SegmentSummary:
    """A deployed segment with its current member count (0 once archived)."""

    definition: SegmentDefinition
    status: SegmentStatus
    deployed_at: datetime
    members: int
    details: dict[str, list[str]] = field(default_factory=dict)  # persona goals, pains, ...


async def deploy_segment(
    conn: asyncpg.Connection,
    *,
    definition: SegmentDefinition,
    source: str,
    details: Mapping[str, list[str]] | None = None,
) -> SegmentDeployResult:
    """Store a segment's definition unless the same version is already active."""
    stored = {**definition.model_dump(mode="json"), **(details or {})}
    async with conn.transaction():
        current = await conn.fetchrow(
            "SELECT version, status FROM segments WHERE segment_id = $1 FOR UPDATE",
            definition.segment_id,
        )
        outcome: DeployOutcome
        if current is None:
            outcome = "created"
            await conn.execute(
                "INSERT INTO segments (segment_id, version, name, kind, definition, source)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                definition.segment_id,
                definition.version,
                definition.name,
                definition.kind,
                stored,
                source,
            )
        elif current["status"] == "active" and current["version"] == definition.version:
            return SegmentDeployResult(definition.segment_id, definition.version, "unchanged")
        else:
            outcome = "restored" if current["status"] == "archived" else "changed"
            # Membership is filled anew for the new definition, from the first customer.
            await conn.execute(
                "UPDATE segments SET version = $2, name = $3, kind = $4, definition = $5,"
                " source = $6, status = 'active', deployed_at = now(),"
                " filled_version = NULL, fill_cursor = NULL WHERE segment_id = $1",
                definition.segment_id,
                definition.version,
                definition.name,
                definition.kind,
                stored,
                source,
            )
        await _announce(conn, definition.segment_id, definition.version, "active")
    return SegmentDeployResult(definition.segment_id, definition.version, outcome)


async def archive_segment(conn: asyncpg.Connection, *, segment_id: str) -> bool:
    """Stop a segment: no longer evaluated, no members; False when it was never deployed."""
    async with conn.transaction():
        version = await conn.fetchval(
            "UPDATE segments SET status = 'archived' WHERE segment_id = $1 RETURNING version",
            segment_id,
        )
        if version is None:
            return False
        await conn.execute("DELETE FROM segment_memberships WHERE segment_id = $1", segment_id)
        await _announce(conn, segment_id, version, "archived")
    return True


async def active_segments(conn: asyncpg.Connection | asyncpg.Pool) -> list[SegmentDefinition]:
    """The definitions to evaluate: every active segment, by id."""
    rows = await conn.fetch(
        "SELECT definition FROM segments WHERE status = 'active' ORDER BY segment_id"
    )
    return [SegmentDefinition.model_validate(row["definition"]) for row in rows]


async def list_segments(conn: asyncpg.Connection | asyncpg.Pool) -> list[SegmentSummary]:
    """Every deployed segment, active and archived, by id, with its member count."""
    rows = await conn.fetch(_SUMMARY + " GROUP BY s.segment_id ORDER BY s.segment_id")
    return [_summary(row) for row in rows]


async def get_segment(
    conn: asyncpg.Connection | asyncpg.Pool, *, segment_id: str
) -> SegmentSummary | None:
    row = await conn.fetchrow(
        _SUMMARY + " WHERE s.segment_id = $1 GROUP BY s.segment_id", segment_id
    )
    return _summary(row) if row is not None else None


_SUMMARY = (
    "SELECT s.definition, s.status, s.deployed_at, count(m.customer_id) AS members"
    " FROM segments s LEFT JOIN segment_memberships m ON m.segment_id = s.segment_id"
)


def _summary(row: asyncpg.Record) -> SegmentSummary:
    stored: dict[str, Any] = row["definition"]
    definition = SegmentDefinition.model_validate(stored)
    details = {
        key: list(value)
        for key, value in stored.items()
        if key not in SegmentDefinition.model_fields and isinstance(value, list)
    }
    return SegmentSummary(
        definition=definition,
        status=row["status"],
        deployed_at=row["deployed_at"],
        members=int(row["members"]),
        details=details,
    )


async def _announce(conn: asyncpg.Connection, segment_id: str, version: str, status: str) -> None:
    # The same channel as journeys: every listener reloads what it serves on any deploy.
    payload = json.dumps({"segment_id": segment_id, "version": version, "status": status})
    await conn.execute("SELECT pg_notify($1, $2)", DEPLOY_CHANNEL, payload)
